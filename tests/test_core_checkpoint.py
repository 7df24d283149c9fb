"""Checkpoint I/O: config.json + safetensors round trip, bf16 save, metadata, content hash, errors."""

import json

import pytest
import torch

from studio.core.checkpoint import (
    WEIGHTS_NAME,
    CheckpointError,
    content_hash,
    load_model,
    read_metadata,
    save_model,
    state_dict_hash,
)
from studio.core.dit import DiT

TINY = dict(sample_size=8, patch_size=2, in_channels=4, hidden_size=32, depth=2, num_heads=4, num_classes=3)


def _model(seed=0):
    torch.manual_seed(seed)
    m = DiT(**TINY)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return m.eval()


def test_round_trip_exact_and_diffusers_readable(tmp_path):
    m = _model()
    save_model(m, tmp_path, metadata={"steps": 10, "dataset": "shapes"})
    loaded = load_model(DiT, tmp_path)
    x, y = torch.randn(2, 4, 8, 8), torch.tensor([0, 2])
    torch.testing.assert_close(loaded(x, 3, y), m(x, 3, y), atol=0, rtol=0)
    assert json.loads((tmp_path / "config.json").read_text())["_class_name"] == "DiT"
    assert read_metadata(tmp_path)["steps"] == "10"
    torch.testing.assert_close(DiT.from_pretrained(tmp_path)(x, 3, y), m(x, 3, y))
    assert not list(tmp_path.glob("*.tmp"))


def test_bf16_save_halves_size_and_stays_close(tmp_path):
    m = _model()
    save_model(m, tmp_path / "fp32")
    save_model(m, tmp_path / "bf16", dtype=torch.bfloat16)
    s32 = (tmp_path / "fp32" / WEIGHTS_NAME).stat().st_size
    s16 = (tmp_path / "bf16" / WEIGHTS_NAME).stat().st_size
    assert s16 < 0.6 * s32
    loaded = load_model(DiT, tmp_path / "bf16")
    assert loaded.blocks[0].attn.to_q.weight.dtype == torch.float32  # stored bf16, computed in fp32
    x, y = torch.randn(2, 4, 8, 8), torch.tensor([0, 2])
    ref = m(x, 3, y)
    assert (loaded(x, 3, y) - ref).abs().max() < 0.02 * ref.abs().max() + 1e-3


def test_content_hash_ignores_metadata_and_tracks_weights(tmp_path):
    m = _model()
    save_model(m, tmp_path / "a", metadata={"note": "one"})
    save_model(m, tmp_path / "b", metadata={"note": "two"})
    save_model(_model(seed=1), tmp_path / "c")
    assert content_hash(tmp_path / "a") == content_hash(tmp_path / "b") == state_dict_hash(m.state_dict())
    assert content_hash(tmp_path / "a") != content_hash(tmp_path / "c")
    assert read_metadata(tmp_path / "a")["content_hash"] == content_hash(tmp_path / "a")


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(CheckpointError, match="config.json"):
        load_model(DiT, tmp_path)
    save_model(_model(), tmp_path)
    with pytest.raises(CheckpointError, match="not a Linear"):
        load_model(torch.nn.Linear, tmp_path)
