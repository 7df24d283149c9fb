"""Noise schedules and samplers: thin constructors over diffusers' schedulers.

Training uses DDPM (the forward process + its posterior); sampling picks any of ``SAMPLERS``.
All of them share one beta schedule so a model trained under DDPM samples with each of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

SAMPLERS: tuple[str, ...] = ("dpm++", "ddim", "euler", "ddpm")
BetaSchedule = Literal["linear", "scaled_linear", "squaredcos_cap_v2"]


@dataclass(frozen=True)
class NoiseSpec:
    """The forward process a model was trained under; saved in its config, reused to sample."""

    num_train_timesteps: int = 1000
    beta_schedule: BetaSchedule = "linear"
    beta_start: float = 1e-4
    beta_end: float = 0.02

    def kwargs(self) -> dict:
        return {"num_train_timesteps": self.num_train_timesteps, "beta_schedule": self.beta_schedule,
                "beta_start": self.beta_start, "beta_end": self.beta_end}


def make_scheduler(name: str, num_train_timesteps: int = 1000, beta_schedule: BetaSchedule = "linear",
                   beta_start: float = 1e-4, beta_end: float = 0.02, clip_x0: float | None = None):
    """A fresh diffusers scheduler for ``name`` (one of ``SAMPLERS``), ε-prediction.

    ``clip_x0``: clamp each step's predicted x0 to ±clip_x0 (pixel-space models whose data lie in
    [-1, 1]; diffusers' ``clip_sample`` / DPM-Solver's thresholding). Euler has no such option.
    """
    from diffusers import (DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler,
                           EulerDiscreteScheduler)

    common = dict(num_train_timesteps=num_train_timesteps, beta_schedule=beta_schedule,
                  beta_start=beta_start, beta_end=beta_end, prediction_type="epsilon")
    clip = dict(clip_sample=clip_x0 is not None, clip_sample_range=clip_x0 or 1.0)
    if name == "ddpm":
        return DDPMScheduler(**common, variance_type="fixed_small", **clip)
    if name == "ddim":
        return DDIMScheduler(**common, **clip, set_alpha_to_one=True, timestep_spacing="trailing")
    if name == "dpm++":
        if clip_x0 not in (None, 1.0):
            # diffusers' thresholding clips to [-s, s] and divides by s: only s = 1 is a plain clip
            raise ValueError(f"clip_x0: DPM-Solver++ clips to ±1.0 only, got {clip_x0}")
        thresh = dict(thresholding=True, sample_max_value=clip_x0, dynamic_thresholding_ratio=1.0) if clip_x0 else {}
        return DPMSolverMultistepScheduler(**common, algorithm_type="dpmsolver++", solver_order=2,
                                           timestep_spacing="trailing", **thresh)
    if name == "euler":
        return EulerDiscreteScheduler(**common, timestep_spacing="trailing")
    raise ValueError(f"sampler: unknown {name!r}; choose from {', '.join(SAMPLERS)}")


def scheduler_from_spec(name: str, spec: NoiseSpec):
    return make_scheduler(name, **spec.kwargs())


def add_noise(scheduler, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """x_t = sqrt(ᾱ_t) x0 + sqrt(1 − ᾱ_t) ε (the DDPM forward process), any scheduler with ᾱ."""
    ac = scheduler.alphas_cumprod.to(x0.device, torch.float32)[t.long()]  # (B,)
    ac = ac.view(-1, *([1] * (x0.dim() - 1)))
    return (ac.sqrt() * x0.float() + (1 - ac).sqrt() * noise.float()).to(x0.dtype)


TimestepBias = Literal["none", "later", "earlier"]


def timestep_weights(num_train_timesteps: int, bias: TimestepBias = "none", portion: float = 0.25,
                     multiplier: float = 1.0) -> torch.Tensor | None:
    """Sampling weights over the training timesteps, or None for uniform.

    ``bias`` "later" multiplies the weight of the noisiest ``portion`` of the timesteps by ``multiplier``, "earlier"
    that of the cleanest; the names and meaning are those of diffusers' SDXL training example
    (``--timestep_bias_strategy / _portion / _multiplier``)."""
    if bias == "none" or multiplier == 1.0:
        return None
    if not 0.0 < portion <= 1.0:
        raise ValueError(f"timestep_bias_portion: {portion} must be in (0, 1]")
    if multiplier <= 0:
        raise ValueError(f"timestep_bias_multiplier: {multiplier} must be > 0")
    if bias not in ("later", "earlier"):
        raise ValueError(f"timestep_bias: unknown {bias!r}; choose from none, later, earlier")
    weights = torch.ones(num_train_timesteps)
    k = max(1, round(portion * num_train_timesteps))
    if bias == "later":
        weights[-k:] *= multiplier
    else:
        weights[:k] *= multiplier
    return weights / weights.sum()


def sample_timesteps(batch: int, num_train_timesteps: int, generator: torch.Generator | None = None,
                     device: str | torch.device = "cpu", weights: torch.Tensor | None = None) -> torch.Tensor:
    """Training timesteps, (B,) long: uniform, or drawn with ``weights`` (``timestep_weights``)."""
    if weights is None:
        return torch.randint(0, num_train_timesteps, (batch,), generator=generator).to(device)
    return torch.multinomial(weights, batch, replacement=True, generator=generator).to(device)
