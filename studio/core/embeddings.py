"""Embeddings: patchify/unpatchify (2D, 3D), patch embedders, timestep and label embedders,
sincos positional tables (1D/2D/3D) and rotary position embeddings (1D and axial 2D/3D).

Conventions follow facebookresearch/DiT and diffusers so that DiT checkpoints map onto these
modules by name: token order is row-major over the grid, a patch flattens as (p_h, p_w, C), the
2D sincos table puts the column code first and the row code second (MAE's ``get_2d_sincos``), and
the timestep code is diffusers' ``get_timestep_embedding(flip_sin_to_cos=True, shift=1)``.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

# ----------------------------------------------------------------------------- patchify


def patchify_2d(x: torch.Tensor, patch: int) -> torch.Tensor:
    """(B, C, H, W) → (B, N, p·p·C) with N = (H/p)·(W/p), row-major, patch flattened (p, p, C)."""
    B, C, H, W = x.shape
    _check_divisible((H, W), (patch, patch), "x")
    h, w = H // patch, W // patch
    x = x.reshape(B, C, h, patch, w, patch)
    x = torch.einsum("nchpwq->nhwpqc", x)  # (B, h, w, p, p, C)
    return x.reshape(B, h * w, patch * patch * C)


def unpatchify_2d(tokens: torch.Tensor, patch: int, grid: tuple[int, int], channels: int) -> torch.Tensor:
    """(B, N, p·p·C) → (B, C, H, W); inverse of :func:`patchify_2d` (DiT's ``nhwpqc->nchpwq``)."""
    B = tokens.shape[0]
    h, w = grid
    x = tokens.reshape(B, h, w, patch, patch, channels)
    x = torch.einsum("nhwpqc->nchpwq", x)  # (B, C, h, p, w, p)
    return x.reshape(B, channels, h * patch, w * patch)


def patchify_3d(x: torch.Tensor, patch: tuple[int, int, int]) -> torch.Tensor:
    """(B, C, T, H, W) → (B, N, pt·ph·pw·C), N = (T/pt)(H/ph)(W/pw), order (t, h, w)."""
    B, C, T, H, W = x.shape
    pt, ph, pw = patch
    _check_divisible((T, H, W), patch, "x")
    t, h, w = T // pt, H // ph, W // pw
    x = x.reshape(B, C, t, pt, h, ph, w, pw)
    x = x.permute(0, 2, 4, 6, 3, 5, 7, 1)  # (B, t, h, w, pt, ph, pw, C)
    return x.reshape(B, t * h * w, pt * ph * pw * C)  # (B, N, pt·ph·pw·C)


def unpatchify_3d(
    tokens: torch.Tensor, patch: tuple[int, int, int], grid: tuple[int, int, int], channels: int
) -> torch.Tensor:
    """(B, N, pt·ph·pw·C) → (B, C, T, H, W); inverse of :func:`patchify_3d`."""
    B = tokens.shape[0]
    pt, ph, pw = patch
    t, h, w = grid
    x = tokens.reshape(B, t, h, w, pt, ph, pw, channels)
    x = x.permute(0, 7, 1, 4, 2, 5, 3, 6)  # (B, C, t, pt, h, ph, w, pw)
    return x.reshape(B, channels, t * pt, h * ph, w * pw)


def _check_divisible(sizes: Sequence[int], patch: Sequence[int], name: str) -> None:
    for s, p in zip(sizes, patch):
        if s % p:
            raise ValueError(f"{name}: spatial size {tuple(sizes)} is not divisible by patch size {tuple(patch)}")


class PatchEmbed2d(nn.Module):
    """Non-overlapping p×p patches → tokens via a strided conv (``proj``), as DiT and diffusers."""

    def __init__(self, patch_size: int, in_channels: int, dim: int, bias: bool = True):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_channels, dim, kernel_size=patch_size, stride=patch_size, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_divisible(x.shape[-2:], (self.patch_size,) * 2, "x")
        # contiguous: a transposed token stream stays transposed through every residual add and
        # makes each LayerNorm (forward and backward) copy it
        return self.proj(x).flatten(2).transpose(1, 2).contiguous()  # (B, N, D)

    def grid(self, x: torch.Tensor) -> tuple[int, int]:
        return x.shape[-2] // self.patch_size, x.shape[-1] // self.patch_size


class PatchEmbed3d(nn.Module):
    """(pt, ph, pw) patches of a (B, C, T, H, W) video → tokens via a strided Conv3d (``proj``)."""

    def __init__(self, patch_size: tuple[int, int, int], in_channels: int, dim: int, bias: bool = True):
        super().__init__()
        self.patch_size = tuple(patch_size)
        self.proj = nn.Conv3d(in_channels, dim, kernel_size=self.patch_size, stride=self.patch_size, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_divisible(x.shape[-3:], self.patch_size, "x")
        return self.proj(x).flatten(2).transpose(1, 2).contiguous()  # (B, N, D), see PatchEmbed2d

    def grid(self, x: torch.Tensor) -> tuple[int, int, int]:
        return tuple(s // p for s, p in zip(x.shape[-3:], self.patch_size))  # type: ignore[return-value]


# ----------------------------------------------------------------------------- conditioning


def timestep_features(t: torch.Tensor, dim: int = 256, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal timestep code, (B,) → (B, dim) float32, [cos | sin] with diffusers' DiT frequency
    spacing (``downscale_freq_shift=1``) so imported diffusers DiT checkpoints see the same input."""
    from diffusers.models.embeddings import get_timestep_embedding

    return get_timestep_embedding(t, dim, flip_sin_to_cos=True, downscale_freq_shift=1, max_period=max_period)


class TimestepEmbedder(nn.Module):
    """Scalar diffusion timestep → vector: sinusoidal code then a 2-layer SiLU MLP (DiT)."""

    def __init__(self, dim: int, freq_dim: int = 256):
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
        code = timestep_features(t, self.freq_dim)  # (B, freq_dim) float32
        return self.mlp(code.to(dtype or self.mlp[0].weight.dtype))  # (B, D)


class LabelEmbedder(nn.Module):
    """Class label → vector; row ``num_classes`` is the null class used for classifier-free guidance.

    During training a label is replaced by the null class with probability ``dropout_prob``.
    """

    def __init__(self, num_classes: int, dim: int, dropout_prob: float = 0.1):
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = num_classes
        self.dropout_prob = dropout_prob
        self.embedding_table = nn.Embedding(num_classes + 1, dim)

    def forward(self, labels: torch.Tensor, force_drop: torch.Tensor | None = None) -> torch.Tensor:
        if force_drop is not None:
            labels = torch.where(force_drop.bool(), self.num_classes, labels)
        elif self.training and self.dropout_prob > 0:
            drop = torch.rand(labels.shape[0], device=labels.device) < self.dropout_prob
            labels = torch.where(drop, self.num_classes, labels)
        return self.embedding_table(labels)  # (B, D)

    def null(self, batch: int, device: torch.device | None = None) -> torch.Tensor:
        return torch.full((batch,), self.num_classes, dtype=torch.long, device=device)


class TokenProjection(nn.Module):
    """Text-token (or pooled-vector) projection into the model width: Linear → GELU(tanh) → Linear
    (PixArt's caption projection)."""

    def __init__(self, in_dim: int, dim: int):
        super().__init__()
        self.linear_1 = nn.Linear(in_dim, dim)
        self.act = nn.GELU(approximate="tanh")
        self.linear_2 = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_2(self.act(self.linear_1(x)))


# ----------------------------------------------------------------------------- sincos tables


def sincos_1d(dim: int, positions: torch.Tensor) -> torch.Tensor:
    """(M,) positions → (M, dim) float32 table [sin | cos] with frequencies 1/10000^(2i/dim)."""
    if dim % 2:
        raise ValueError(f"sincos dim must be even, got {dim}")
    omega = torch.arange(dim // 2, dtype=torch.float64, device=positions.device) / (dim / 2.0)
    omega = 1.0 / 10000**omega  # (dim/2,)
    out = positions.reshape(-1).to(torch.float64)[:, None] * omega[None]  # (M, dim/2)
    return torch.cat([torch.sin(out), torch.cos(out)], dim=1).float()


def sincos_2d(dim: int, h: int, w: int, device: torch.device | None = None) -> torch.Tensor:
    """(h·w, dim) table for a row-major h×w grid; first half codes the column, second the row
    (MAE/DiT layout, equal to diffusers' ``get_2d_sincos_pos_embed`` at its base size)."""
    if dim % 4:
        raise ValueError(f"2D sincos dim must be divisible by 4, got {dim}")
    rows = torch.arange(h, device=device).repeat_interleave(w)  # (h·w,)
    cols = torch.arange(w, device=device).repeat(h)  # (h·w,)
    return torch.cat([sincos_1d(dim // 2, cols), sincos_1d(dim // 2, rows)], dim=1)


def sincos_3d(dim: int, t: int, h: int, w: int, device: torch.device | None = None) -> torch.Tensor:
    """(t·h·w, dim) table, order (t, h, w): the first 3/4 of the channels code space (2D table),
    the last 1/4 code time (the split diffusers uses for CogVideoX)."""
    dim_t = dim // 4
    dim_s = dim - dim_t
    if dim_s % 4 or dim_t % 2:
        raise ValueError(f"3D sincos dim {dim} must split into a spatial part divisible by 4 and an even temporal part")
    spatial = sincos_2d(dim_s, h, w, device).repeat(t, 1)  # (t·h·w, dim_s)
    frames = sincos_1d(dim_t, torch.arange(t, device=device)).repeat_interleave(h * w, dim=0)  # (t·h·w, dim_t)
    return torch.cat([spatial, frames], dim=1)


# ----------------------------------------------------------------------------- RoPE


def grid_positions(grid: Sequence[int], device: torch.device | None = None) -> torch.Tensor:
    """Integer coordinates of a row-major grid: (prod(grid), len(grid))."""
    axes = [torch.arange(n, device=device) for n in grid]
    mesh = torch.meshgrid(*axes, indexing="ij")
    return torch.stack([m.reshape(-1) for m in mesh], dim=-1)


def rope_angles(positions: torch.Tensor, head_dim: int, theta: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotary cos/sin for ``positions`` (..., N, A) with A axes (1 = sequence, 2/3 = axial grid).

    Each axis rotates its own slice of ``2·(head_dim // (2A))`` channels; left-over channels (when
    head_dim is not divisible by 2A) are not rotated. Returns cos, sin of shape (..., N, head_dim)
    in float32 for the rotate-half convention.
    """
    if positions.dim() == 1:
        positions = positions[:, None]
    n_axes = positions.shape[-1]
    per_axis = head_dim // (2 * n_axes)  # frequencies per axis
    if per_axis < 1:
        raise ValueError(f"head_dim {head_dim} too small for {n_axes}-axis RoPE")
    inv_freq = 1.0 / theta ** (torch.arange(per_axis, dtype=torch.float32, device=positions.device) / per_axis)
    angles = positions.to(torch.float32)[..., :, None] * inv_freq  # (..., N, A, per_axis)
    angles = angles.flatten(-2)  # (..., N, A·per_axis)
    pad = head_dim // 2 - angles.shape[-1]
    if pad:
        angles = torch.nn.functional.pad(angles, (0, pad))  # un-rotated tail: angle 0
    angles = torch.cat([angles, angles], dim=-1)  # (..., N, head_dim)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate (B, heads, N, head_dim) by angles (N, head_dim) or (B, N, head_dim); rotate-half form,
    computed in float32 and cast back."""
    if cos.dim() == 3:  # per-sample positions → broadcast over heads
        cos, sin = cos[:, None], sin[:, None]
    xf = x.float()
    x1, x2 = xf.chunk(2, dim=-1)
    rotated = torch.cat([-x2, x1], dim=-1)
    return (xf * cos + rotated * sin).to(x.dtype)


__all__ = [
    "patchify_2d",
    "unpatchify_2d",
    "patchify_3d",
    "unpatchify_3d",
    "PatchEmbed2d",
    "PatchEmbed3d",
    "timestep_features",
    "TimestepEmbedder",
    "LabelEmbedder",
    "TokenProjection",
    "sincos_1d",
    "sincos_2d",
    "sincos_3d",
    "grid_positions",
    "rope_angles",
    "apply_rope",
]
