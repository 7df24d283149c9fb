"""Zero-initialised extension points: a new branch starts as an exact identity of the base model.

A plugin that adds a path to a trained model (VFX's mask branch, a conditioning projection, an
extra residual) routes it through one of these, so at step 0 the base output is unchanged bit for
bit and training grows the new path from nothing (DiT's adaLN-Zero, Flamingo's tanh gate).
``assert_unchanged`` is the check a plugin's test calls.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn


class ZeroInitProjection(nn.Linear):
    """A Linear whose weight and bias start at zero: ``base + proj(branch)`` equals ``base`` at init."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, **factory: Any):
        super().__init__(in_features, out_features, bias=bias, **factory)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.zeros_(self.weight)
        if self.bias is not None:
            nn.init.zeros_(self.bias)


class ZeroGate(nn.Module):
    """``tanh(α)·x`` with α = 0 at init (per channel when ``dim`` is given): a branch that starts off."""

    def __init__(self, dim: int | None = None):
        super().__init__()
        self.alpha = nn.Parameter(torch.zeros(dim if dim is not None else 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.alpha) * x  # (..., dim) or broadcast scalar


def assert_unchanged(base: Callable[..., torch.Tensor], extended: Callable[..., torch.Tensor],
                     *inputs: Any, atol: float = 0.0, **kwargs: Any) -> float:
    """Run both on the same inputs; raise ``AssertionError`` if outputs differ by more than ``atol``.

    Returns the largest absolute difference (0.0 for an exact identity).
    """
    with torch.no_grad():
        a, b = base(*inputs, **kwargs), extended(*inputs, **kwargs)
    if a.shape != b.shape:
        raise AssertionError(f"shapes differ: base {tuple(a.shape)} vs extended {tuple(b.shape)}")
    diff = (a.float() - b.float()).abs().max().item() if a.numel() else 0.0
    if diff > atol:
        raise AssertionError(f"extended model changes the base output at init: max |diff| = {diff:.3e} > {atol}")
    return diff
