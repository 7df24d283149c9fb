"""LoRA fine-tuning on a kohya-style folder: trains through the shared Trainer, writes an adapter
with its record, the adapter loads onto its base and changes the output, and training resumes."""

import json

import numpy as np
import pytest
import torch

from studio.core.checkpoint import load_model, save_model
from studio.core.dit import DiT
from studio.tasks.image.data import export_folder, make_split
from studio.tasks.image.model import image_dit


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("lora")
    torch.manual_seed(0)
    base = image_dit("image-micro", sample_size=16)
    with torch.no_grad():
        base.final_layer.linear.weight.normal_(0, 0.05)
    save_model(base, root / "base")
    export_folder(make_split("train", 8, seed=2, size=16), root / "data" / "2_outline")
    cfg = root / "lora.toml"
    cfg.write_text(f"""
output_dir = "{root / 'run'}"
max_steps = 3
batch_size = 4
seed = 0
[log]
every = 1
progress_bar = false
[lora]
name = "tiny-style"
base = "{root / 'base'}"
rank = 4
trigger = "sks style"
export_to = "{root / 'adapter'}"
[data]
source = "{root / 'data'}"
size = 16
cache_dir = "{root / 'cache'}"
""")
    return root, cfg


def test_lora_trains_saves_and_loads(setup):
    from studio.lora import load_adapter, read_metadata
    from studio.tasks.image.finetune import main
    from studio.tasks.image.pipeline import generate_arrays

    root, cfg = setup
    record = main(cfg)
    assert record["steps"] == 3
    meta = read_metadata(root / "adapter")
    assert meta["rank"] == "4" and json.loads(meta["steps"]) == 3 and meta["trigger"] == "sks style"
    base = load_model(DiT, root / "base")
    before = generate_arrays(base, None, ["sks style, a red circle"], size=16, steps=2, seed=0)
    load_adapter(base, root / "adapter", weight=1.0)  # base check by weight hash
    after = generate_arrays(base, None, ["sks style, a red circle"], size=16, steps=2, seed=0)
    assert not np.array_equal(before, after)


def test_lora_training_resumes(setup):
    from studio.tasks.image.finetune import main

    root, cfg = setup
    record = main(cfg, {"max_steps": 5, "resume": "latest"})
    assert record["steps"] == 5
