"""Gaussian noise for the forward process and the sampler's start, optionally correlated across frames.

``mixed_noise`` is the *mixed noise prior* of PYoCo (Ge et al., "Preserve Your Own Correlation",
ICCV 2023): every frame's noise is a shared component plus its own,
ε_i = √ρ·ε_shared + √(1−ρ)·ε_i', so each element stays N(0, 1) while any two frames' noise has
correlation ρ. ρ = 0 is the usual independent noise. A model trained under it must also be
sampled from it (the starting noise), which is why the value travels with the model.
"""

from __future__ import annotations

import torch


def mixed_noise(shape: tuple[int, ...], correlation: float = 0.0, dim: int = 2,
                generator: torch.Generator | None = None, device: str | torch.device = "cpu") -> torch.Tensor:
    """N(0, 1) noise of ``shape``, correlated ``correlation`` (ρ ∈ [0, 1)) along axis ``dim``."""
    if not 0.0 <= correlation < 1.0:
        raise ValueError(f"correlation: {correlation} must be in [0, 1)")
    gen_device = generator.device if generator is not None else "cpu"
    own = torch.randn(shape, generator=generator, device=gen_device)
    if correlation == 0.0:
        return own.to(device)
    shared_shape = tuple(1 if i == dim else s for i, s in enumerate(shape))
    shared = torch.randn(shared_shape, generator=generator, device=gen_device)
    return (correlation**0.5 * shared + (1 - correlation) ** 0.5 * own).to(device)
