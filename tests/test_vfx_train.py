"""The VFX training entry point from config files: a tiny base (gated preconditioning, frame-
correlated noise, caption dropout) and a controllable LoRA on it, both through the shared Trainer;
the exports carry their config, record and loss curve, and load back for generation."""

import json

import numpy as np
import torch

from studio.tasks.vfx.train import main

BASE = """
output_dir = "{root}/base_run"
export_dir = "{root}/base"
max_steps = 4
batch_size = 2
[log]
every = 2
progress_bar = false
[model]
hidden_size = 32
depth = 2
num_heads = 2
patch_size = [2, 8, 8]
attention = "factorised"
preconditioning = "gated"
frame_noise_correlation = 0.9
caption_dropout = 0.5
[data]
effects = ["generic"]
clips = 4
"""

LORA = """
output_dir = "{root}/lora_run"
export_dir = "{root}/fx"
max_steps = 4
batch_size = 2
[log]
every = 2
progress_bar = false
[data]
effects = ["explode", "melt"]
clips = 4
[lora]
base = "{root}/base"
name = "fx"
rank = 2
alpha = 2
targets = ["to_q", "to_k", "to_v", "to_out", "fc1", "fc2"]
mask_blocks = 1
caption_dropout = 0.5
mask_loss_weight = 9.0
"""


def test_base_then_controllable_lora_from_configs(tmp_path):
    from studio.tasks.vfx.pipeline import Request, VfxPipeline

    (tmp_path / "base.toml").write_text(BASE.format(root=tmp_path))
    (tmp_path / "lora.toml").write_text(LORA.format(root=tmp_path))
    base = main(tmp_path / "base.toml")
    assert base["steps"] == 4 and np.isfinite(base["final_loss"])
    config = json.loads((tmp_path / "base" / "config.json").read_text())
    assert config["preconditioning"] == "gated" and config["frame_noise_correlation"] == 0.9
    assert (tmp_path / "base" / "loss_curve.png").is_file() and (tmp_path / "base" / "train_config.json").is_file()
    lora = main(tmp_path / "lora.toml")
    assert lora["steps"] == 4 and lora["effects"] == ["explode", "melt"]
    card = (tmp_path / "fx" / "ADAPTER_CARD.md").read_text()
    assert "loss_curve: loss_curve.png" in card and (tmp_path / "fx" / "loss_curve.png").is_file()
    pipe = VfxPipeline.load(tmp_path / "base", ((str(tmp_path / "fx"), 1.0),))
    assert pipe.has_mask_branch and pipe.model.noise_correlation == 0.9
    mask = np.zeros((32, 32), bool)
    mask[8:20, 8:20] = True
    clip = pipe.generate([Request(np.full((32, 32, 3), 90, np.uint8), "the grey object explodes", mask, 0.25, 1.0)],
                         steps=2, generator=torch.Generator().manual_seed(0), guidance=2.0)
    assert clip.shape == (1, 16, 32, 32, 3)
