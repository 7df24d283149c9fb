"""Transformer blocks built from :mod:`studio.core.attention`.

* :class:`DiTBlock` — adaLN-Zero (DiT): the conditioning vector ``c`` produces shift/scale/gate for
  the attention and MLP branches; ``adaLN_modulation`` is zero-initialised so a fresh block is the
  identity. Optional cross-attention to text tokens (PixArt-style, between self-attention and MLP,
  its ``to_out`` zero-initialised so adding it leaves the block unchanged).
* :class:`FinalLayer` — adaLN-modulated LayerNorm + linear to patch pixels (learned-σ heads just
  ask for ``2·C`` output channels).
* :class:`EncoderBlock` — pre-norm self-attention + MLP.
* :class:`DecoderBlock` — pre-norm causal self-attention + cross-attention + MLP with a
  :class:`DecoderCache` for incremental decoding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .attention import Attention, KVCache, SdpaSpec

MLP_ACTS = ("gelu", "swiglu")


class Mlp(nn.Module):
    """Feed-forward: ``fc1`` → GELU(tanh) → ``fc2``, or SwiGLU (``fc1`` emits value and gate)."""

    def __init__(self, dim: int, hidden: int, act: str = "gelu", bias: bool = True):
        super().__init__()
        if act not in MLP_ACTS:
            raise ValueError(f"act must be one of {MLP_ACTS}, got {act!r}")
        self.act = act
        self.fc1 = nn.Linear(dim, hidden * (2 if act == "swiglu" else 1), bias=bias)
        self.fc2 = nn.Linear(hidden, dim, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc1(x)
        if self.act == "swiglu":
            value, gate = h.chunk(2, dim=-1)
            h = value * F.silu(gate)
        else:
            h = F.gelu(h, approximate="tanh")
        return self.fc2(h)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``x·(1 + scale) + shift`` with (B, D) shift/scale broadcast over tokens.

    shift/scale are cast to x's dtype first: under autocast they come out of a bf16 Linear while x
    (a LayerNorm output) is float32, and mixed-dtype ``addcmul`` is several times slower on CPU.
    """
    return torch.addcmul(shift.unsqueeze(1).to(x.dtype), x, 1 + scale.unsqueeze(1).to(x.dtype))


def gated_residual(x: torch.Tensor, gate: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """``x + gate·h``; the product stays in h's dtype (bf16 under autocast), as cheap as it gets."""
    return x + gate.unsqueeze(1) * h


class DiTBlock(nn.Module):
    """adaLN-Zero transformer block (DiT) with optional cross-attention to a context."""

    def __init__(
        self,
        dim: int,
        heads: int,
        mlp_ratio: float = 4.0,
        kernel: Any = SdpaSpec(),
        context_dim: int | None = None,
        cross_heads: int | None = None,
        mlp_act: str = "gelu",
        norm_eps: float = 1e-6,
        mlp_norm_eps: float | None = None,
    ):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=norm_eps)
        self.attn = Attention(dim, heads, kernel=kernel)
        self.cross_attn = None
        if context_dim:
            self.norm_cross = nn.LayerNorm(dim, eps=norm_eps)
            self.cross_attn = Attention(dim, cross_heads or heads, SdpaSpec(), context_dim=context_dim)
            nn.init.zeros_(self.cross_attn.to_out.weight)  # new branch starts as an identity
            nn.init.zeros_(self.cross_attn.to_out.bias)
        # diffusers' DiT uses a different eps before the MLP (its ``norm_eps``) than before attention
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=mlp_norm_eps or norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act=mlp_act)
        self.adaLN_modulation = nn.Linear(dim, 6 * dim)
        nn.init.zeros_(self.adaLN_modulation.weight)
        nn.init.zeros_(self.adaLN_modulation.bias)

    def forward(
        self,
        x: torch.Tensor,
        c: torch.Tensor,
        grid: tuple[int, ...] | None = None,
        context: torch.Tensor | None = None,
        context_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        mod = self.adaLN_modulation(F.silu(c))  # (B, 6D)
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = mod.chunk(6, dim=1)
        h = self.attn(modulate(self.norm1(x), shift_msa, scale_msa), grid=grid)
        x = gated_residual(x, gate_msa, h)
        if self.cross_attn is not None and context is not None:
            x = x + self.cross_attn(self.norm_cross(x), context=context, context_mask=context_mask)
        h = self.mlp(modulate(self.norm2(x), shift_mlp, scale_mlp))
        return gated_residual(x, gate_mlp, h)


class FinalLayer(nn.Module):
    """adaLN-modulated LayerNorm + ``linear`` to ``patch_elems · out_channels`` per token."""

    def __init__(self, dim: int, patch_elems: int, out_channels: int, norm_eps: float = 1e-6):
        super().__init__()
        self.norm_final = nn.LayerNorm(dim, elementwise_affine=False, eps=norm_eps)
        self.linear = nn.Linear(dim, patch_elems * out_channels)
        self.adaLN_modulation = nn.Linear(dim, 2 * dim)
        for layer in (self.linear, self.adaLN_modulation):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.adaLN_modulation(F.silu(c)).chunk(2, dim=1)
        return self.linear(modulate(self.norm_final(x), shift, scale))  # (B, N, patch_elems·C)


class EncoderBlock(nn.Module):
    """Pre-norm transformer encoder block: self-attention + MLP."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, kernel: Any = SdpaSpec(), mlp_act: str = "gelu"):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, kernel=kernel)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act=mlp_act)

    def forward(
        self,
        x: torch.Tensor,
        attn_mask: torch.Tensor | None = None,
        grid: tuple[int, ...] | None = None,
        positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), attn_mask=attn_mask, grid=grid, positions=positions)
        return x + self.mlp(self.norm2(x))


@dataclass
class DecoderCache:
    """Per-layer caches of a :class:`DecoderBlock`: growing self-attention keys, static context keys."""

    self_attn: KVCache = field(default_factory=KVCache)
    cross_attn: KVCache = field(default_factory=lambda: KVCache(static=True))

    @property
    def length(self) -> int:
        return self.self_attn.length

    def select(self, index: torch.Tensor) -> None:
        self.self_attn.select(index)
        self.cross_attn.select(index)


def make_caches(n_layers: int) -> list[DecoderCache]:
    return [DecoderCache() for _ in range(n_layers)]


class DecoderBlock(nn.Module):
    """Pre-norm decoder block: causal self-attention (+RoPE optional) → cross-attention → MLP."""

    def __init__(
        self,
        dim: int,
        heads: int,
        mlp_ratio: float = 4.0,
        context_dim: int | None = None,
        kernel: SdpaSpec = SdpaSpec(causal=True),
        cross: bool = True,
        mlp_act: str = "gelu",
    ):
        super().__init__()
        if not isinstance(kernel, SdpaSpec) or not kernel.causal:
            raise ValueError("kernel: a decoder block needs a causal SdpaSpec")
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, kernel=kernel)
        self.cross_attn = None
        if cross:
            self.norm_cross = nn.LayerNorm(dim)
            self.cross_attn = Attention(dim, heads, SdpaSpec(), context_dim=context_dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act=mlp_act)

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None = None,
        context_mask: torch.Tensor | None = None,
        attn_mask: torch.Tensor | None = None,
        cache: DecoderCache | None = None,
        positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        self_kv = cache.self_attn if cache is not None else None
        x = x + self.attn(self.norm1(x), attn_mask=attn_mask, kv_cache=self_kv, positions=positions)
        if self.cross_attn is not None and (context is not None or (cache is not None and cache.cross_attn.k is not None)):
            cross_kv = cache.cross_attn if cache is not None else None
            x = x + self.cross_attn(self.norm_cross(x), context=context, context_mask=context_mask, kv_cache=cross_kv)
        return x + self.mlp(self.norm2(x))


__all__ = [
    "Mlp",
    "modulate",
    "gated_residual",
    "DiTBlock",
    "FinalLayer",
    "EncoderBlock",
    "DecoderBlock",
    "DecoderCache",
    "KVCache",
    "make_caches",
]
