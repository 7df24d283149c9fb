"""Attention kernels: shapes, causality, parity with naive references, bf16, KV cache, masks, RoPE."""

import math

import pytest
import torch

from studio.core.attention import (
    KERNELS,
    Attention,
    KVCache,
    LinearSpec,
    RopeSpec,
    SdpaSpec,
    linear_attention,
    register_kernel,
)
from studio.core.blocks import DecoderBlock, make_caches
from studio.core.embeddings import apply_rope, grid_positions, rope_angles

torch.manual_seed(0)


def naive_softmax(q, k, v, mask=None):
    """Explicit softmax attention on (B, h, N, d); mask True = attend."""
    s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf"))
    return torch.softmax(s, -1) @ v


def naive_linear(q, k, v, eps=1e-6):
    """Per-query explicit formula: o_i = Σ_j φ(q_i)·φ(k_j) v_j / Σ_j φ(q_i)·φ(k_j)."""
    fq, fk = q.relu().double(), k.relu().double()
    w = fq @ fk.transpose(-2, -1)  # (B, h, N, N) pairwise kernel
    return ((w @ v.double()) / (w.sum(-1, keepdim=True) + eps)).float()


def _split(attn, x, context=None):
    B, N, _ = x.shape
    src = x if context is None else context
    q = attn.to_q(x).view(B, N, attn.heads, -1).transpose(1, 2)
    k = attn.to_k(src).view(B, src.shape[1], attn.heads, -1).transpose(1, 2)
    v = attn.to_v(src).view(B, src.shape[1], attn.heads, -1).transpose(1, 2)
    return q, k, v


def _merge(o):
    B, h, N, d = o.shape
    return o.transpose(1, 2).reshape(B, N, h * d)


@pytest.mark.parametrize(
    "spec,grid",
    [(SdpaSpec(), None), (SdpaSpec(causal=True), None), (SdpaSpec(rope=RopeSpec(2)), (4, 6)), (LinearSpec(), (4, 6))],
)
def test_shapes_and_names(spec, grid):
    attn = Attention(32, 4, kernel=spec)
    out = attn(torch.randn(2, 24, 32), grid=grid)
    assert out.shape == (2, 24, 32)
    names = {n for n, _ in attn.named_modules()}
    assert {"to_q", "to_k", "to_v", "to_out"} <= names
    assert all(isinstance(getattr(attn, n), torch.nn.Linear) for n in ("to_q", "to_k", "to_v", "to_out"))


def test_sdpa_matches_naive_softmax():
    attn = Attention(32, 4).eval()
    x = torch.randn(2, 10, 32)
    q, k, v = _split(attn, x)
    ref = attn.to_out(_merge(naive_softmax(q, k, v)))
    torch.testing.assert_close(attn(x), ref, atol=1e-5, rtol=1e-5)


def test_causal_matches_naive_and_has_no_future_gradient():
    attn = Attention(32, 4, kernel=SdpaSpec(causal=True))
    x = torch.randn(1, 8, 32, requires_grad=True)
    out = attn(x)
    q, k, v = _split(attn, x)
    mask = torch.ones(8, 8, dtype=torch.bool).tril()
    torch.testing.assert_close(out, attn.to_out(_merge(naive_softmax(q, k, v, mask))), atol=1e-5, rtol=1e-5)
    i = 3
    (grad,) = torch.autograd.grad(out[0, i].sum(), x)
    assert grad[0, i + 1 :].abs().max() == 0  # nothing flows from the future
    assert grad[0, : i + 1].abs().max() > 0


def test_linear_kernel_matches_explicit_formula_plus_dwc():
    spec = LinearSpec()
    attn = Attention(32, 2, kernel=spec).eval()
    torch.nn.init.normal_(attn.kernel.dwc.weight, std=0.1)  # zero-init would hide the DWC term
    torch.nn.init.normal_(attn.kernel.dwc.bias, std=0.1)
    H, W = 4, 5
    x = torch.randn(2, H * W, 32)
    q, k, v = _split(attn, x)
    vimg = _merge(v).transpose(1, 2).reshape(2, 32, H, W)
    dwc = torch.nn.functional.conv2d(vimg, attn.kernel.dwc.weight, attn.kernel.dwc.bias, padding=2, groups=32)
    ref = attn.to_out(_merge(naive_linear(q, k, v)) + dwc.flatten(2).transpose(1, 2))
    torch.testing.assert_close(attn(x, grid=(H, W)), ref, atol=1e-5, rtol=1e-4)


def test_linear_kernel_3d_grid_uses_conv3d():
    attn = Attention(16, 2, kernel=LinearSpec(grid_dims=3, dwc_kernel_t=3))
    assert attn.kernel.dwc.weight.shape == (16, 1, 3, 5, 5)
    assert attn(torch.randn(1, 2 * 3 * 4, 16), grid=(2, 3, 4)).shape == (1, 24, 16)
    with pytest.raises(ValueError, match="grid"):
        attn(torch.randn(1, 24, 16), grid=(4, 6))


def test_linear_kernel_accumulates_in_float32_under_bf16_autocast():
    q, k, v = (torch.randn(1, 2, 64, 8) for _ in range(3))
    ref = naive_linear(q, k, v)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = linear_attention(q.bfloat16(), k.bfloat16(), v.bfloat16())
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), ref, atol=3e-2, rtol=3e-2)


def test_linear_kernel_requires_grid():
    attn = Attention(16, 2, kernel=LinearSpec())
    with pytest.raises(ValueError, match="grid"):
        attn(torch.randn(1, 16, 16))


@pytest.mark.parametrize("spec,grid", [(SdpaSpec(), None), (LinearSpec(), (4, 4))])
def test_bf16_autocast_close_to_fp32(spec, grid):
    attn = Attention(64, 4, kernel=spec).eval()
    x = torch.randn(2, 16, 64)
    ref = attn(x, grid=grid)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = attn(x, grid=grid)
    assert out.dtype == torch.bfloat16
    assert (out.float() - ref).abs().max() / ref.abs().max() < 0.05


def test_cross_attention_respects_context_mask():
    attn = Attention(32, 4, context_dim=24).eval()
    x = torch.randn(2, 5, 32)
    ctx = torch.randn(2, 7, 24)
    keep = torch.tensor([[True] * 4 + [False] * 3, [True] * 7])
    out = attn(x, context=ctx, context_mask=keep)
    ctx2 = ctx.clone()
    ctx2[0, 4:] = torch.randn(3, 24) * 100  # masked tokens may change freely
    torch.testing.assert_close(attn(x, context=ctx2, context_mask=keep), out)
    q, k, v = _split(attn, x, ctx)
    ref = attn.to_out(_merge(naive_softmax(q, k, v, keep[:, None, None, :])))
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_fully_masked_context_row_is_zero_not_nan():
    attn = Attention(16, 2, context_dim=16)
    keep = torch.tensor([[False, False], [True, False]])
    out = attn(torch.randn(2, 3, 16), context=torch.randn(2, 2, 16), context_mask=keep)
    assert torch.isfinite(out).all()


def test_padding_mask_with_causal():
    attn = Attention(16, 2, kernel=SdpaSpec(causal=True)).eval()
    x = torch.randn(2, 6, 16)
    pad = torch.ones(2, 6, 6, dtype=torch.bool)
    pad[1, :, 4:] = False  # second sequence: last two keys are padding
    out = attn(x, attn_mask=pad)
    q, k, v = _split(attn, x)
    ref_mask = pad[:, None] & torch.ones(6, 6, dtype=torch.bool).tril()
    torch.testing.assert_close(out, attn.to_out(_merge(naive_softmax(q, k, v, ref_mask))), atol=1e-5, rtol=1e-5)


def test_rope_1d_relative_and_2d_axial():
    cos, sin = rope_angles(torch.arange(10), 8)
    q, k = torch.randn(1, 1, 10, 8), torch.randn(1, 1, 10, 8)
    qr, kr = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
    # RoPE scores depend only on relative offsets: shift both positions by 3
    cos3, sin3 = rope_angles(torch.arange(3, 13), 8)
    s1 = qr @ kr.transpose(-2, -1)
    s2 = apply_rope(q, cos3, sin3) @ apply_rope(k, cos3, sin3).transpose(-2, -1)
    torch.testing.assert_close(s1, s2, atol=1e-4, rtol=1e-4)
    pos = grid_positions((3, 4))
    assert pos.shape == (12, 2) and pos[5].tolist() == [1, 1]
    c2, _ = rope_angles(pos, 8)
    assert c2.shape == (12, 8)
    attn3 = Attention(48, 2, kernel=SdpaSpec(rope=RopeSpec(3)))
    assert attn3(torch.randn(1, 2 * 2 * 3, 48), grid=(2, 2, 3)).shape == (1, 12, 48)


@pytest.mark.parametrize("rope", [None, RopeSpec(1)])
def test_kv_cache_decode_equals_full_causal(rope):
    torch.manual_seed(1)
    blocks = [DecoderBlock(32, 4, context_dim=24, kernel=SdpaSpec(causal=True, rope=rope)).eval() for _ in range(2)]
    x = torch.randn(2, 7, 32)
    ctx, keep = torch.randn(2, 5, 24), torch.tensor([[True] * 5, [True] * 3 + [False] * 2])
    full = x
    for b in blocks:
        full = b(full, context=ctx, context_mask=keep)
    caches = make_caches(len(blocks))
    steps = []
    for i in range(7):
        h = x[:, i : i + 1]
        for b, c in zip(blocks, caches):
            h = b(h, context=ctx, context_mask=keep, cache=c)
        steps.append(h)
    torch.testing.assert_close(torch.cat(steps, 1), full, atol=1e-5, rtol=1e-5)
    # prefill 4 tokens at once, then decode the rest one by one
    caches = make_caches(len(blocks))
    h = x[:, :4]
    for b, c in zip(blocks, caches):
        h = b(h, context=ctx, context_mask=keep, cache=c)
    outs = [h]
    for i in range(4, 7):
        h = x[:, i : i + 1]
        for b, c in zip(blocks, caches):
            h = b(h, context=ctx, context_mask=keep, cache=c)
        outs.append(h)
    torch.testing.assert_close(torch.cat(outs, 1), full, atol=1e-5, rtol=1e-5)
    assert caches[0].length == 7


def test_kv_cache_select_reorders_batch():
    cache = KVCache()
    cache.append(torch.arange(2.0).view(2, 1, 1, 1), torch.zeros(2, 1, 1, 1))
    cache.select(torch.tensor([1, 1, 0]))
    assert cache.k.flatten().tolist() == [1.0, 1.0, 0.0]


def test_registry_add_kernel_is_one_spec_and_one_entry():
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class MeanSpec:
        pass

    @register_kernel(MeanSpec)
    class MeanKernel(torch.nn.Module):
        def __init__(self, spec, dim, heads):
            super().__init__()

        def forward(self, q, k, v, **kw):
            return _merge(v.mean(2, keepdim=True).expand_as(q))

    try:
        attn = Attention(8, 2, kernel=MeanSpec())
        assert attn(torch.randn(1, 3, 8)).shape == (1, 3, 8)
    finally:
        KERNELS.pop(MeanSpec)
    with pytest.raises(ValueError, match="kernel"):
        Attention(8, 2, kernel=MeanSpec())


def test_bad_mask_dtype_is_named():
    attn = Attention(8, 2, context_dim=8)
    with pytest.raises(TypeError, match="mask"):
        attn(torch.randn(1, 2, 8), context=torch.randn(1, 3, 8), context_mask=torch.ones(1, 3))
