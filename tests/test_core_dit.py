"""Blocks, embeddings and the DiT: shapes, zero-init identities, presets, save/load, diffusers parity."""

import pytest
import torch

from studio.core.attention import LinearSpec
from studio.core.blocks import DiTBlock, EncoderBlock, FinalLayer, Mlp
from studio.core.dit import DIT_PRESETS, DiT, dit_from_preset
from studio.core.embeddings import (
    LabelEmbedder,
    PatchEmbed3d,
    patchify_2d,
    patchify_3d,
    sincos_2d,
    sincos_3d,
    unpatchify_2d,
    unpatchify_3d,
)

torch.manual_seed(0)
TINY = dict(sample_size=8, patch_size=2, in_channels=4, hidden_size=32, depth=2, num_heads=4)


def test_patchify_roundtrips():
    x = torch.randn(2, 3, 8, 12)
    tok = patchify_2d(x, 4)
    assert tok.shape == (2, 6, 48)
    torch.testing.assert_close(unpatchify_2d(tok, 4, (2, 3), 3), x)
    v = torch.randn(1, 3, 4, 6, 8)
    tok3 = patchify_3d(v, (2, 3, 2))
    assert tok3.shape == (1, 2 * 2 * 4, 2 * 3 * 2 * 3)
    torch.testing.assert_close(unpatchify_3d(tok3, (2, 3, 2), (2, 2, 4), 3), v)
    with pytest.raises(ValueError, match="divisible"):
        patchify_2d(torch.randn(1, 3, 7, 8), 2)


def test_patch_embed_3d_matches_patchify_order():
    pe = PatchEmbed3d((2, 2, 2), 3, 8)
    v = torch.randn(1, 3, 4, 4, 6)
    tok = pe(v)
    assert tok.shape == (1, 2 * 2 * 3, 8) and pe.grid(v) == (2, 2, 3)


def test_sincos_tables():
    t2 = sincos_2d(16, 3, 4)
    assert t2.shape == (12, 16)
    assert torch.equal(t2[0, :4], torch.zeros(4)) and torch.equal(t2[0, 4:8], torch.ones(4))
    assert sincos_3d(32, 2, 3, 4).shape == (24, 32)


def test_label_embedder_null_class_and_dropout():
    emb = LabelEmbedder(5, 8, dropout_prob=1.0)
    assert emb.embedding_table.num_embeddings == 6
    y = torch.tensor([0, 1, 2])
    torch.testing.assert_close(emb.train()(y), emb.embedding_table.weight[[5, 5, 5]])
    torch.testing.assert_close(emb.eval()(y), emb.embedding_table.weight[[0, 1, 2]])


@pytest.mark.parametrize("act", ["gelu", "swiglu"])
def test_mlp(act):
    assert Mlp(16, 32, act)(torch.randn(2, 3, 16)).shape == (2, 3, 16)


@pytest.mark.parametrize("kernel,grid", [(None, None), (LinearSpec(), (2, 3))])
def test_dit_block_is_identity_at_init_also_with_cross_attention(kernel, grid):
    kw = {} if kernel is None else {"kernel": kernel}
    block = DiTBlock(32, 4, context_dim=24, **kw)
    x = torch.randn(2, 6, 32)
    out = block(x, torch.randn(2, 32), grid=grid, context=torch.randn(2, 5, 24))
    torch.testing.assert_close(out, x)
    # once the modulation is trained the block does change x
    torch.nn.init.normal_(block.adaLN_modulation.weight, std=0.1)
    assert not torch.allclose(block(x, torch.randn(2, 32), grid=grid), x)


def test_cross_attention_branch_starts_as_identity():
    block = DiTBlock(32, 4, context_dim=24)
    torch.nn.init.normal_(block.adaLN_modulation.weight, std=0.1)
    x, c = torch.randn(2, 6, 32), torch.randn(2, 32)
    torch.testing.assert_close(block(x, c, context=torch.randn(2, 5, 24)), block(x, c))


def test_final_layer_and_encoder_block_shapes():
    assert FinalLayer(32, 4, 8)(torch.randn(2, 6, 32), torch.randn(2, 32)).shape == (2, 6, 32)
    assert EncoderBlock(32, 4)(torch.randn(2, 6, 32)).shape == (2, 6, 32)


@pytest.mark.parametrize("hw", [(8, 8), (4, 12), (10, 6)])
def test_dit_forward_shapes_any_grid(hw):
    model = DiT(**TINY, num_classes=3, learn_sigma=True)
    _randomize(model)
    x = torch.randn(2, 4, *hw)
    out = model(x, torch.tensor([3, 900]), torch.tensor([0, 2]))
    assert out.shape == (2, 8, *hw)
    with pytest.raises(ValueError, match="divisible"):
        model(torch.randn(1, 4, 7, 8), 1)


def test_dit_text_conditioned_and_linear_variant():
    model = DiT(**TINY, context_dim=24, pooled_dim=16, attention="linear", linear_heads=2, learn_sigma=False)
    _randomize(model)
    x = torch.randn(2, 4, 8, 8)
    ctx, keep = torch.randn(2, 5, 24), torch.ones(2, 5, dtype=torch.bool)
    out = model(x, 10, context=ctx, context_mask=keep, pooled=torch.randn(2, 16))
    assert out.shape == (2, 4, 8, 8)
    assert isinstance(model.blocks[0].attn.kernel.dwc, torch.nn.Conv2d)
    assert model.blocks[0].attn.heads == 2 and model.blocks[0].cross_attn.heads == 4
    with pytest.raises(ValueError, match="y"):
        model(x, 10, y=torch.tensor([0, 1]))


def test_dit_at_init_predicts_zero_and_names_are_stable():
    model = DiT(**TINY, num_classes=3)
    assert model(torch.randn(1, 4, 8, 8), 5, torch.tensor([1])).abs().max() == 0  # zero final layer
    names = model.attention_names
    assert "blocks.0.attn.to_q" in names and "blocks.1.attn.to_out" in names


def test_dit_sdpa_to_linear_inherits_all_but_attention():
    teacher = DiT(**TINY, num_classes=3)
    student = DiT(**TINY, num_classes=3, attention="linear", linear_heads=2)
    missing, unexpected = student.load_state_dict(teacher.state_dict(), strict=False)
    assert unexpected == []
    assert all(".kernel.dwc." in k for k in missing)


def test_dit_save_pretrained_roundtrip(tmp_path):
    model = DiT(**TINY, num_classes=3).eval()  # eval: no random label dropout
    _randomize(model)
    model.save_pretrained(tmp_path)
    loaded = DiT.from_pretrained(tmp_path).eval()
    x = torch.randn(1, 4, 8, 8)
    torch.testing.assert_close(loaded(x, 7, torch.tensor([1])), model(x, 7, torch.tensor([1])))


def test_presets_and_bad_config():
    assert "DiT-S/2" in DIT_PRESETS
    m = dit_from_preset("DiT-Tiny/2", sample_size=8, depth=1)
    assert m.config.hidden_size == 128
    with pytest.raises(ValueError, match="attention"):
        DiT(**TINY, attention="flash")
    with pytest.raises(ValueError, match="preset"):
        dit_from_preset("DiT-Huge/1")


def test_dit_bf16_autocast_close_to_fp32():
    model = DiT(**TINY, num_classes=3).eval()
    _randomize(model)
    x, t, y = torch.randn(2, 4, 8, 8), torch.tensor([5, 500]), torch.tensor([0, 1])
    ref = model(x, t, y)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x, t, y)
    assert (out.float() - ref).abs().max() / ref.abs().max() < 0.05


def _randomize(model):
    """Give zero-initialised tensors small random values so outputs are non-trivial."""
    with torch.no_grad():
        for p in model.parameters():
            if p.abs().max() == 0:
                p.normal_(0, 0.05)
