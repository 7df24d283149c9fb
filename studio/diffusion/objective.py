"""One DDPM training step's randomness and score, shared by every diffusion objective.

A plugin's objective (the ``Trainer``'s ``objective(model, batch) -> (loss, logs)``) only says how
its network is called and what conditions it; :class:`DDPMTraining` draws the condition dropout,
the timesteps and the noise from its own seeded generator (in that order), noises ``x0`` with the
forward process, and scores the output with ``L_simple`` (+ ``L_vlb`` for learned σ).
"""

from __future__ import annotations

import torch

from studio.diffusion.losses import GaussianTerms, diffusion_loss
from studio.diffusion.schedulers import add_noise, make_scheduler


class DDPMTraining:
    """The forward process a model trains under (DDPM, 1000 linear-β steps by default)."""

    def __init__(self, seed: int = 0, **schedule_kwargs):
        self.scheduler = make_scheduler("ddpm", **schedule_kwargs)
        self.terms = GaussianTerms.from_scheduler(self.scheduler)
        self.g = torch.Generator().manual_seed(seed)

    def dropped(self, batch: int, p: float) -> torch.Tensor:
        """(B,) bool: which samples lose their condition (classifier-free guidance training)."""
        return torch.rand(batch, generator=self.g) < p

    def noised(self, x0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(x_t, t, ε) for a clean batch ``x0``: uniform t, Gaussian ε, on ``x0``'s device."""
        B, dev = x0.shape[0], x0.device
        t = torch.randint(0, self.scheduler.config.num_train_timesteps, (B,), generator=self.g).to(dev)
        noise = torch.randn(x0.shape, generator=self.g).to(dev)
        return add_noise(self.scheduler, x0, noise, t), t, noise

    def loss(self, out: torch.Tensor, x0: torch.Tensor, xt: torch.Tensor, t: torch.Tensor,
             noise: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        return diffusion_loss(out.float(), noise, x0, xt, t, self.terms)
