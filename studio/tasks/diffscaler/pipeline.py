"""Sampling with per-sample routing: one batch, several datasets, each through its own affiners."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch

from studio.diffusion import make_scheduler, sample
from studio.tasks.diffscaler.model import DiffscalerNet


def initial_noise(n: int, channels: int, size: int, seed: int) -> torch.Tensor:
    """x_T for ``n`` samples; sample i's noise does not depend on which batch it is rendered in."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn((n, channels, size, size), generator=g)  # (N, C, H, W)


def denoise(net: DiffscalerNet, datasets: Sequence[str], labels: Sequence[int], x_T: torch.Tensor,
            steps: int = 25, guidance: float = 2.0, sampler: str = "ddim",
            callback: Callable[[int, int, torch.Tensor], None] | None = None) -> torch.Tensor:
    """Run the sampler on a batch whose sample i belongs to ``datasets[i]`` with class ``labels[i]``.

    Returns x_0 in [-1, 1], (B, C, H, W) float32.
    """
    unknown = sorted(set(datasets) - set(net.datasets))
    if unknown:
        raise KeyError(f"datasets: no affiner loaded for {unknown}; loaded: {net.datasets}")
    route = torch.tensor([net.datasets.index(d) for d in datasets])  # (B,)
    cond = {"labels": torch.as_tensor(list(labels), dtype=torch.long), "route": route}
    uncond = {"labels": torch.full_like(cond["labels"], net.null_label), "route": route}
    scheduler = make_scheduler(sampler)
    x = sample(net.eps, tuple(x_T.shape), scheduler, steps, guidance=guidance, cond=cond, uncond=uncond,
               callback=callback, x_T=x_T)
    return x.clamp(-1, 1)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) in [-1, 1] → (B, H, W, 3) uint8."""
    return ((x.permute(0, 2, 3, 1).float().numpy() + 1) * 127.5).round().clip(0, 255).astype(np.uint8)


def balanced_labels(num: int, num_labels: int, offset: int = 0) -> list[int]:
    """Classes 0..K-1 in turn (a dataset without classes uses the null row via label 0)."""
    return [(offset + i) % max(num_labels, 1) for i in range(num)]
