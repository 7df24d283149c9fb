"""The VFX training entry point from config files: a tiny base (gated preconditioning, frame-
correlated noise, caption dropout) and a controllable LoRA on it, both through the shared Trainer;
the exports carry their config, record and loss curve, and load back for generation."""

import json

import numpy as np
import pytest
import torch

from studio.tasks.vfx.train import main
from studio.train import read_metrics

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
motion_loss_weight = 1.0
effect_label = true
timestep_bias = "later"
timestep_bias_portion = 0.3
timestep_bias_multiplier = 3.0
"""


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory):
    root = tmp_path_factory.mktemp("vfx_train")
    (root / "base.toml").write_text(BASE.format(root=root))
    return root, main(root / "base.toml")


def test_base_from_config(tiny_base):
    root, base = tiny_base
    assert base["steps"] == 4 and np.isfinite(base["final_loss"])
    config = json.loads((root / "base" / "config.json").read_text())
    assert config["preconditioning"] == "gated" and config["frame_noise_correlation"] == 0.9
    assert (root / "base" / "loss_curve.png").is_file() and (root / "base" / "train_config.json").is_file()


def test_controllable_lora_from_config(tiny_base):
    from studio.tasks.vfx.pipeline import Request, VfxPipeline

    tmp_path = tiny_base[0]
    (tmp_path / "lora.toml").write_text(LORA.format(root=tmp_path))
    lora = main(tmp_path / "lora.toml")
    assert lora["steps"] == 4 and lora["effects"] == ["explode", "melt"] and lora["motion_loss_weight"] == 1.0
    assert lora["timestep_bias"] == "later: 0.3 of the timesteps drawn 3x as often"
    logged = read_metrics(tmp_path / "lora_run" / "metrics.jsonl")[-1]
    assert logged["loss"] == pytest.approx(logged["frame_loss"] + logged["motion_loss"], rel=1e-4)
    card = (tmp_path / "fx" / "ADAPTER_CARD.md").read_text()
    assert "loss_curve: loss_curve.png" in card and (tmp_path / "fx" / "loss_curve.png").is_file()
    pipe = VfxPipeline.load(tmp_path / "base", ((str(tmp_path / "fx"), 1.0),))
    assert pipe.has_mask_branch and pipe.model.noise_correlation == 0.9
    assert pipe.model.controls.effect.names == ("explode", "melt")  # the effect label's vocabulary, saved
    assert pipe.model.controls.effect.table.weight[:2].abs().sum() > 0  # trained off zero
    mask = np.zeros((32, 32), bool)
    mask[8:20, 8:20] = True
    reqs = [Request(np.full((32, 32, 3), 90, np.uint8), "the grey object explodes", mask, 0.25, 1.0, e)
            for e in ("explode", "melt")]
    clip = pipe.generate(reqs, steps=2, generator=torch.Generator().manual_seed(0), guidance=2.0)
    assert clip.shape == (2, 16, 32, 32, 3)


def test_lora_trains_on_an_open_vfx_folder(tiny_base):
    """Real data in the Open-VFX layout trains through the same config: ``data.folder``."""
    from studio.tasks.vfx.data import clip_for, export_open_vfx
    from studio.tasks.vfx.effects import EFFECT_NAMES

    root = tiny_base[0]
    folder = export_open_vfx([clip_for(i, 5, EFFECT_NAMES) for i in range(3)], root / "openvfx")
    text = LORA.format(root=root).replace('effects = ["explode", "melt"]', f'folder = "{folder}"')
    text = text.replace('export_dir = "{0}/fx"'.format(root), 'export_dir = "{0}/fx_folder"'.format(root))
    (root / "lora_folder.toml").write_text(text.replace("lora_run", "lora_folder_run"))
    record = main(root / "lora_folder.toml")
    assert record["dataset"] == f"open-vfx-folder:{folder}:3 clips"
    assert record["effects"] == sorted(EFFECT_NAMES[:3]) and np.isfinite(record["final_loss"])
    assert (root / "fx_folder" / "adapter_model.safetensors").is_file()


def test_open_vfx_folder_too_short_for_training(tmp_path):
    from studio.tasks.vfx.data import ClipConfig, FolderClipDataset, clip_for, export_open_vfx
    from studio.tasks.vfx.effects import EFFECT_NAMES

    folder = export_open_vfx([clip_for(0, 5, EFFECT_NAMES)], tmp_path / "openvfx")
    with pytest.raises(ValueError, match=r"annotations.json\[0\].*16 frames.*needs 24"):
        FolderClipDataset(folder, ClipConfig(frames=24))


def test_train_base_exports_the_tuned_base_the_adapter_is_tied_to(tiny_base):
    """``train_base``: every base weight trains with the controls; the tuned base is exported beside
    the adapter, the adapter loads on it (hash check) and not on the base it was tuned from."""
    from safetensors.torch import load_file

    from studio.lora import AdapterBaseMismatch
    from studio.tasks.vfx.pipeline import VfxPipeline

    root = tiny_base[0]
    text = LORA.format(root=root).replace("lora_run", "full_run").replace(f"{root}/fx", f"{root}/fx_full")
    (root / "full.toml").write_text(text + "train_base = true\n")
    record = main(root / "full.toml")
    assert record["train_base"] is True
    tuned = load_file(str(root / "fx_full" / "base" / "diffusion_pytorch_model.safetensors"))
    start = load_file(str(root / "base" / "diffusion_pytorch_model.safetensors"))
    assert tuned.keys() == start.keys()
    assert any(not torch.equal(tuned[k], start[k]) for k in start)  # the base weights trained
    assert json.loads((root / "fx_full" / "base" / "training.json").read_text())["kind"] == "vfx-base"
    pipe = VfxPipeline.load(root / "fx_full" / "base", ((str(root / "fx_full"), 1.0),))
    assert pipe.has_mask_branch
    with pytest.raises(AdapterBaseMismatch):
        VfxPipeline.load(root / "base", ((str(root / "fx_full"), 1.0),))


def test_a_hold_loss_without_a_hold_is_refused_naming_the_field():
    from pydantic import ValidationError

    from studio.tasks.vfx.train import LoraSection

    with pytest.raises(ValidationError, match="hold_loss_weight"):
        LoraSection(hold_loss_weight=0.1)
    assert LoraSection(hold=True, hold_loss_weight=0.1).hold_loss_weight == 0.1


def test_init_from_starts_from_a_trained_adapter_and_refuses_one_that_does_not_fit(tiny_base):
    """``init_from``: the LoRA and the controls start as the named adapter's (at a vanishing learning rate they
    end there too); an adapter of another rank or with other controls is refused, naming the field."""
    from safetensors.torch import load_file

    root = tiny_base[0]
    text = LORA.format(root=root).replace("lora_run", "src_run").replace(f"{root}/fx", f"{root}/fx_src")
    (root / "src.toml").write_text(text.replace("[lora]\n", "[optimizer]\nlr = 1e-2\n[lora]\n"))  # far from zero
    main(root / "src.toml")
    start = text.replace("src_run", "init_run").replace(f"{root}/fx_src", f"{root}/fx_init")
    start = start.replace('[lora]\n', f'[optimizer]\nlr = 1e-12\n[lora]\ninit_from = "{root}/fx_src"\n')
    (root / "init.toml").write_text(start)
    assert main(root / "init.toml")["init_from"] == f"{root}/fx_src"
    for name in ("adapter_model.safetensors", "controls.safetensors"):
        src, got = load_file(str(root / "fx_src" / name)), load_file(str(root / "fx_init" / name))
        assert src.keys() == got.keys() and any(v.abs().sum() > 0 for v in src.values())
        for k in src:
            torch.testing.assert_close(got[k].float(), src[k].float(), atol=1e-6, rtol=1e-2)
    (root / "init_rank.toml").write_text(start.replace("rank = 2", "rank = 4"))
    with pytest.raises(ValueError, match="init_from"):
        main(root / "init_rank.toml")
    (root / "init_labels.toml").write_text(start.replace('effects = ["explode", "melt"]', 'effects = ["melt"]'))
    with pytest.raises(ValueError, match="init_from.*controls"):
        main(root / "init_labels.toml")
