"""Attention = projections (``to_q``, ``to_k``, ``to_v``, ``to_out``) + a kernel from a registry.

The kernel is chosen by a typed spec:

* :class:`SdpaSpec` — softmax attention through ``torch.nn.functional.scaled_dot_product_attention``
  (causal, boolean padding / attention masks, optional RoPE: 1D or axial 2D/3D via :class:`RopeSpec`).
* :class:`LinearSpec` — LiT's linear attention ``O = φ(Q)(φ(K)ᵀV) / (φ(Q)·Σφ(K)) + DWC(V)`` with
  φ = ReLU; ``KᵀV`` and the normaliser are accumulated in float32 and cast back. ``DWC`` is a
  depthwise conv on V over the token grid: k×k on a 2D (H, W) grid, ``kt×k×k`` on a 3D (T, H, W)
  grid (default kt = 3: a video token also sees its neighbouring frames; kt = 1 makes it per-frame).
  It is non-causal by design (DiT only).

Cross-attention is the same module called with ``context``: queries from ``x``, keys and values
from ``context`` (optionally of another width, ``context_dim``), ``context_mask`` True = keep.

Adding a kernel = one spec dataclass + one ``@register_kernel(Spec)`` factory returning a module
whose ``forward(q, k, v, key_mask, attn_mask, grid, q_offset) -> (B, N, heads·head_dim)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from .embeddings import apply_rope, grid_positions, rope_angles

# ----------------------------------------------------------------------------- specs


@dataclass(frozen=True)
class RopeSpec:
    """Rotary embedding on q and k: ``dims`` = 1 (sequence), 2 (H, W) or 3 (T, H, W) axial."""

    dims: int = 1
    theta: float = 10000.0

    def __post_init__(self) -> None:
        if self.dims not in (1, 2, 3):
            raise ValueError(f"RopeSpec.dims must be 1, 2 or 3, got {self.dims}")


@dataclass(frozen=True)
class SdpaSpec:
    """Softmax attention (torch SDPA)."""

    causal: bool = False
    rope: RopeSpec | None = None


@dataclass(frozen=True)
class LinearSpec:
    """LiT linear attention: ReLU feature map + depthwise conv on V over the token grid.

    ``grid_dims`` is 2 for images (k×k conv) or 3 for video (``dwc_kernel_t``×k×k conv).
    """

    dwc_kernel: int = 5
    eps: float = 1e-6
    grid_dims: int = 2
    dwc_kernel_t: int = 3

    def __post_init__(self) -> None:
        if self.grid_dims not in (2, 3):
            raise ValueError(f"LinearSpec.grid_dims must be 2 or 3, got {self.grid_dims}")
        if self.dwc_kernel % 2 == 0 or self.dwc_kernel_t % 2 == 0:
            raise ValueError("LinearSpec: DWC kernel sizes must be odd so the conv keeps the grid size")


KernelSpec = SdpaSpec | LinearSpec

KERNELS: dict[type, Callable[[Any, int, int], nn.Module]] = {}


def register_kernel(spec_type: type) -> Callable:
    """Decorator: ``@register_kernel(MySpec)`` on a factory ``(spec, dim, heads) -> nn.Module``."""

    def deco(factory: Callable[[Any, int, int], nn.Module]) -> Callable[[Any, int, int], nn.Module]:
        KERNELS[spec_type] = factory
        return factory

    return deco


def build_kernel(spec: Any, dim: int, heads: int) -> nn.Module:
    try:
        factory = KERNELS[type(spec)]
    except KeyError:
        raise ValueError(f"kernel: no attention kernel registered for {type(spec).__name__}") from None
    return factory(spec, dim, heads)


# ----------------------------------------------------------------------------- KV cache


@dataclass
class KVCache:
    """Keys/values of one attention layer kept across decode steps, (B, heads, L, head_dim).

    Self-attention appends each step's new keys; cross-attention (``static=True``) computes the
    context's keys once and reuses them.
    """

    k: torch.Tensor | None = None
    v: torch.Tensor | None = None
    static: bool = False

    @property
    def length(self) -> int:
        return 0 if self.k is None else self.k.shape[2]

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.k is None:
            self.k, self.v = k, v
        else:
            self.k = torch.cat([self.k, k], dim=2)  # (B, h, L+N, dh)
            self.v = torch.cat([self.v, v], dim=2)
        return self.k, self.v

    def select(self, index: torch.Tensor) -> None:
        """Reorder/choose batch rows (beam search, dropping finished sequences)."""
        if self.k is not None:
            self.k, self.v = self.k.index_select(0, index), self.v.index_select(0, index)

    def reset(self) -> None:
        self.k = self.v = None


# ----------------------------------------------------------------------------- kernels


def _merge_heads(o: torch.Tensor) -> torch.Tensor:
    B, h, N, d = o.shape
    return o.transpose(1, 2).reshape(B, N, h * d)  # (B, N, C)


def _as_bool(mask: torch.Tensor, name: str) -> torch.Tensor:
    if mask.dtype != torch.bool:
        raise TypeError(f"{name} must be a bool tensor (True = attend/keep), got {mask.dtype}")
    return mask


class SdpaKernel(nn.Module):
    """Softmax attention via torch SDPA; masks are boolean with True = attend."""

    def __init__(self, spec: SdpaSpec, dim: int, heads: int):
        super().__init__()
        self.causal = spec.causal

    def forward(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        key_mask: torch.Tensor | None = None,
        attn_mask: torch.Tensor | None = None,
        grid: tuple[int, ...] | None = None,
        q_offset: int = 0,
    ) -> torch.Tensor:
        Nq, Nk = q.shape[2], k.shape[2]
        mask = self._mask(q, Nq, Nk, key_mask, attn_mask, q_offset)
        if mask is None:
            # top-left causal alignment equals ours only without a cache offset
            is_causal = self.causal and Nq > 1
            o = F.scaled_dot_product_attention(q, k, v, is_causal=is_causal)  # (B, h, Nq, dh)
            return _merge_heads(o)
        empty = ~mask.any(-1, keepdim=True)  # rows with nothing to attend to (B|1, h|1, Nq, 1)
        if empty.any():
            # SDPA returns NaN for a fully masked row; let it attend anywhere, then zero it
            mask = mask | empty
            o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            o = o.masked_fill(empty, 0.0)
        else:
            o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return _merge_heads(o)

    def _mask(self, q, Nq, Nk, key_mask, attn_mask, q_offset) -> torch.Tensor | None:
        needs_causal_mask = self.causal and Nq > 1 and (q_offset > 0 or key_mask is not None or attn_mask is not None)
        if key_mask is None and attn_mask is None and not needs_causal_mask:
            return None
        mask = None
        if key_mask is not None:
            mask = _as_bool(key_mask, "key mask")[:, None, None, :]  # (B, 1, 1, Nk)
        if attn_mask is not None:
            am = _as_bool(attn_mask, "attn_mask")
            am = am[:, None] if am.dim() == 3 else am  # (B, 1|h, Nq, Nk) or (Nq, Nk)
            mask = am if mask is None else mask & am
        if needs_causal_mask:
            qi = torch.arange(Nq, device=q.device)[:, None] + q_offset
            ki = torch.arange(Nk, device=q.device)[None, :]
            causal = ki <= qi  # (Nq, Nk)
            mask = causal if mask is None else mask & causal
        return mask


register_kernel(SdpaSpec)(SdpaKernel)


class LinearKernel(nn.Module):
    """LiT linear attention with a depthwise conv on V (``dwc``, zero-initialised: a new branch)."""

    def __init__(self, spec: LinearSpec, dim: int, heads: int):
        super().__init__()
        self.eps = spec.eps
        self.grid_dims = spec.grid_dims
        k = spec.dwc_kernel
        if spec.grid_dims == 2:
            self.dwc = nn.Conv2d(dim, dim, k, padding=k // 2, groups=dim)
        else:
            kt = spec.dwc_kernel_t
            self.dwc = nn.Conv3d(dim, dim, (kt, k, k), padding=(kt // 2, k // 2, k // 2), groups=dim)
        nn.init.zeros_(self.dwc.weight)
        nn.init.zeros_(self.dwc.bias)

    def forward(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        key_mask: torch.Tensor | None = None,
        attn_mask: torch.Tensor | None = None,
        grid: tuple[int, ...] | None = None,
        q_offset: int = 0,
    ) -> torch.Tensor:
        if attn_mask is not None:
            raise ValueError("attn_mask: the linear kernel takes only a key padding mask")
        if grid is None or len(grid) != self.grid_dims:
            raise ValueError(f"grid: the linear kernel needs the {self.grid_dims}D token grid, got {grid}")
        o = _merge_heads(linear_attention(q, k, v, key_mask, self.eps))  # (B, N, C)
        conv = self._dwc(v, grid)  # (B, N, C)
        return o.add_(conv) if not (o.requires_grad or conv.requires_grad) else o + conv

    def _dwc(self, v: torch.Tensor, grid: tuple[int, ...]) -> torch.Tensor:
        B, h, N, d = v.shape
        if N != _prod(grid):
            raise ValueError(f"grid: {grid} has {_prod(grid)} cells but there are {N} tokens")
        # (B, h, N, d) → (B, N, C) → (B, C, [T,] H, W): views of to_v's output when it is contiguous
        # (a channels-last image), which the conv takes as is and returns channels-last, so the
        # way back to tokens is a view too
        vg = v.transpose(1, 2).reshape(B, N, h * d).transpose(1, 2).reshape(B, h * d, *grid)
        return self.dwc(vg).flatten(2).transpose(1, 2)  # (B, N, C)


register_kernel(LinearSpec)(LinearKernel)


def linear_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_mask: torch.Tensor | None = None, eps: float = 1e-6
) -> torch.Tensor:
    """``φ(Q)(φ(K)ᵀV) / (φ(Q)·Σφ(K))`` with φ = ReLU on (B, h, N, d); float32 inside, cast back."""
    out_dtype = v.dtype
    with torch.autocast(device_type=q.device.type, enabled=False):
        qf = F.relu(q.float())
        kf = F.relu(k.float())
        vf = v.float()
        if key_mask is not None:
            kf = kf * _as_bool(key_mask, "key mask")[:, None, :, None]  # padded keys contribute nothing
        kv = kf.transpose(-2, -1) @ vf  # (B, h, d, d)
        k_sum = kf.sum(dim=2)  # (B, h, d)
        del kf, vf  # without autograd this frees an N-sized buffer before the next one is made
        num = qf @ kv  # (B, h, N, d)
        den = (qf @ k_sum.unsqueeze(-1)).clamp_min(0) + eps  # (B, h, N, 1)
        # in place when no graph needs ``num`` (inference): one N-sized buffer less at the peak
        out = num.div_(den) if not num.requires_grad else num / den
        return out.to(out_dtype)


def _prod(xs) -> int:
    out = 1
    for x in xs:
        out *= int(x)
    return out


# ----------------------------------------------------------------------------- projections


def _autocast_once(t: torch.Tensor | None) -> torch.Tensor | None:
    """Under autocast, cast an input shared by several projections once instead of once per Linear
    (the autocast dtype is still the one chosen at the edge; this only reads it)."""
    if t is None or not t.is_floating_point() or not torch.is_autocast_enabled(t.device.type):
        return t
    return t.to(torch.get_autocast_dtype(t.device.type))


class Attention(nn.Module):
    """Multi-head attention with stable projection names (the LoRA targeting contract)."""

    def __init__(
        self,
        dim: int,
        heads: int,
        kernel: Any = SdpaSpec(),
        context_dim: int | None = None,
        qk_norm: bool = False,
        bias: bool = True,
    ):
        super().__init__()
        if dim % heads:
            raise ValueError(f"heads: dim {dim} is not divisible by heads {heads}")
        self.dim, self.heads, self.head_dim = dim, heads, dim // heads
        self.spec = kernel
        kv_dim = context_dim or dim
        self.to_q = nn.Linear(dim, dim, bias=bias)
        self.to_k = nn.Linear(kv_dim, dim, bias=bias)
        self.to_v = nn.Linear(kv_dim, dim, bias=bias)
        self.to_out = nn.Linear(dim, dim)
        self.norm_q = nn.RMSNorm(self.head_dim, eps=1e-6) if qk_norm else None
        self.norm_k = nn.RMSNorm(self.head_dim, eps=1e-6) if qk_norm else None
        self.kernel = build_kernel(kernel, dim, heads)

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None = None,
        context_mask: torch.Tensor | None = None,
        attn_mask: torch.Tensor | None = None,
        grid: tuple[int, ...] | None = None,
        kv_cache: KVCache | None = None,
        positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        B, N, _ = x.shape
        x, context = _autocast_once(x), _autocast_once(context)
        q = self._heads(self.to_q(x), self.norm_q)  # (B, h, N, dh)
        cross = context is not None or (kv_cache is not None and kv_cache.static)
        if cross and kv_cache is not None and kv_cache.static and kv_cache.k is not None:
            k, v = kv_cache.k, kv_cache.v  # context keys computed on the first step
        else:
            src = context if cross else x
            if src is None:
                raise ValueError("context: cross-attention cache is empty and no context was given")
            k = self._heads(self.to_k(src), self.norm_k)  # (B, h, M, dh)
            v = self._heads(self.to_v(src), None)
        offset = 0
        if not cross:
            offset = kv_cache.length if kv_cache is not None else 0
            q, k = self._rope(q, k, grid, positions, offset)
        if kv_cache is not None and not (kv_cache.static and kv_cache.k is not None):
            k, v = kv_cache.append(k, v)
        key_mask = context_mask if cross else None
        if not cross and context_mask is not None:
            raise ValueError("context_mask: given without context")
        o = self.kernel(q, k, v, key_mask=key_mask, attn_mask=attn_mask, grid=grid, q_offset=offset)
        return self.to_out(o)  # (B, N, C)

    def _heads(self, t: torch.Tensor, norm: nn.Module | None) -> torch.Tensor:
        B, L, _ = t.shape
        t = t.view(B, L, self.heads, self.head_dim).transpose(1, 2)  # (B, h, L, dh), no copy
        return norm(t) if norm is not None else t

    def _rope(self, q, k, grid, positions, offset):
        rope = getattr(self.spec, "rope", None)
        if rope is None:
            return q, k
        if positions is None:
            if rope.dims == 1:
                positions = torch.arange(offset, offset + q.shape[2], device=q.device)
            else:
                if grid is None or len(grid) != rope.dims:
                    raise ValueError(f"grid: {rope.dims}D RoPE needs grid of {rope.dims} sizes, got {grid}")
                positions = grid_positions(grid, q.device)  # (N, dims)
        elif rope.dims == 1 and positions.shape[-1] != 1:
            positions = positions[..., None]  # (…, N) → (…, N, 1)
        cos, sin = rope_angles(positions, self.head_dim, rope.theta)
        return apply_rope(q, cos, sin), apply_rope(k, cos, sin)
