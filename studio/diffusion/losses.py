"""Diffusion training losses: L_simple, the learned-σ variational bound, and LiT's hybrid KD.

A learned-σ model outputs ``2·C`` channels: ε and ``v`` ∈ [-1, 1] that interpolates the reverse
variance between β̃_t and β_t in log space (Improved DDPM; DiT keeps it). The variational term
trains only ``v`` (the mean uses a detached ε), exactly as DiT's ``hybrid`` loss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


def mean_flat(x: torch.Tensor) -> torch.Tensor:
    """Mean over every axis but the batch, (B,)."""
    return x.flatten(1).mean(1)


class GaussianTerms:
    """Per-timestep constants of the DDPM posterior q(x_{t-1} | x_t, x_0), from a scheduler's β."""

    def __init__(self, betas: torch.Tensor):
        b = betas.double()
        ac = torch.cumprod(1 - b, 0)
        ac_prev = torch.cat([ac.new_ones(1), ac[:-1]])
        post_var = b * (1 - ac_prev) / (1 - ac)
        self.num_timesteps = len(b)
        self.log_beta = b.log()
        # the posterior variance is 0 at t = 0; clip its log to the next value (as IDDPM does)
        self.post_log_var = torch.cat([post_var[1:2], post_var[1:]]).log()
        self.coef_x0 = b * ac_prev.sqrt() / (1 - ac)
        self.coef_xt = (1 - ac_prev) * (1 - b).sqrt() / (1 - ac)
        self.sqrt_recip_ac = (1 / ac).sqrt()
        self.sqrt_recipm1_ac = (1 / ac - 1).sqrt()

    @classmethod
    def from_scheduler(cls, scheduler) -> "GaussianTerms":
        return cls(scheduler.betas)

    def at(self, name: str, t: torch.Tensor, ndim: int) -> torch.Tensor:
        v = getattr(self, name).to(t.device)[t.long()].float()
        return v.view(-1, *([1] * (ndim - 1)))


def _normal_kl(mean1, logvar1, mean2, logvar2):
    return 0.5 * (-1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2) + (mean1 - mean2) ** 2 * torch.exp(-logvar2))


def _approx_std_normal_cdf(x):
    return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def _discretized_gaussian_log_likelihood(x, means, log_scales):
    """log p(x) for x in [-1, 1] quantised to 256 bins (the t = 0 decoder of DDPM)."""
    centred = x - means
    inv_std = torch.exp(-log_scales)
    cdf_plus = _approx_std_normal_cdf(inv_std * (centred + 1.0 / 255.0))
    cdf_min = _approx_std_normal_cdf(inv_std * (centred - 1.0 / 255.0))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_min = torch.log((1.0 - cdf_min).clamp(min=1e-12))
    cdf_delta = cdf_plus - cdf_min
    return torch.where(x < -0.999, log_cdf_plus,
                       torch.where(x > 0.999, log_one_minus_cdf_min, torch.log(cdf_delta.clamp(min=1e-12))))


def vlb_term(terms: GaussianTerms, eps: torch.Tensor, v: torch.Tensor, x0: torch.Tensor, xt: torch.Tensor,
             t: torch.Tensor) -> torch.Tensor:
    """The variational bound term for the learned variance, in bits per dim, (B,).

    ``eps`` should be detached by the caller when only σ is to be trained by this term."""
    nd = x0.dim()
    frac = (v.float() + 1) / 2
    min_log, max_log = terms.at("post_log_var", t, nd), terms.at("log_beta", t, nd)
    model_log_var = frac * max_log + (1 - frac) * min_log
    pred_x0 = terms.at("sqrt_recip_ac", t, nd) * xt.float() - terms.at("sqrt_recipm1_ac", t, nd) * eps.float()
    model_mean = terms.at("coef_x0", t, nd) * pred_x0 + terms.at("coef_xt", t, nd) * xt.float()
    true_mean = terms.at("coef_x0", t, nd) * x0.float() + terms.at("coef_xt", t, nd) * xt.float()
    kl = mean_flat(_normal_kl(true_mean, min_log.expand_as(true_mean), model_mean, model_log_var)) / math.log(2.0)
    nll = -mean_flat(_discretized_gaussian_log_likelihood(x0.float(), model_mean, 0.5 * model_log_var)) / math.log(2.0)
    return torch.where(t == 0, nll, kl)


def split_learned_sigma(out: torch.Tensor, channels: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(B, 2C, ...) → ε (B, C, ...), v (B, C, ...); a plain ε model gives v = None."""
    if out.shape[1] == channels:
        return out, None
    if out.shape[1] != 2 * channels:
        raise ValueError(f"model output has {out.shape[1]} channels; expected {channels} or {2 * channels}")
    return out[:, :channels], out[:, channels:]


def diffusion_loss(out: torch.Tensor, noise: torch.Tensor, x0: torch.Tensor, xt: torch.Tensor, t: torch.Tensor,
                   terms: GaussianTerms | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """L_simple (+ L_vlb for a learned-σ output). Returns the batch-mean loss and its parts."""
    eps, v = split_learned_sigma(out, noise.shape[1])
    simple = mean_flat((eps.float() - noise.float()) ** 2)
    loss, logs = simple, {"l_simple": simple.mean().item()}
    if v is not None:
        if terms is None:
            raise ValueError("terms: a learned-σ model needs the schedule's GaussianTerms for its VLB term")
        # rescaled like DiT/IDDPM: the bound counts once per timestep of the 1000-step chain
        vb = vlb_term(terms, eps.detach(), v, x0, xt, t) * (terms.num_timesteps / 1000.0)
        loss = loss + vb
        logs["l_vlb"] = vb.mean().item()
    return loss.mean(), logs


@dataclass(frozen=True)
class KDWeights:
    """LiT's hybrid distillation weights: L_simple + eps·‖ε_T − ε_S‖² + sigma·‖Σ_T − Σ_S‖²."""

    eps: float = 0.5
    sigma: float = 0.05


def hybrid_kd_terms(student_out: torch.Tensor, teacher_out: torch.Tensor, channels: int,
                    weights: KDWeights = KDWeights()) -> tuple[torch.Tensor, dict[str, float]]:
    """The two distillation terms of LiT (the caller adds its own diffusion loss).

    Σ is the variance output (the learned-range interpolation ``v``) — what the network emits for
    σ; a model without learned σ contributes only the ε term."""
    eps_s, v_s = split_learned_sigma(student_out, channels)
    eps_t, v_t = split_learned_sigma(teacher_out.detach(), channels)
    kd_eps = mean_flat((eps_s.float() - eps_t.float()) ** 2).mean()
    loss, logs = weights.eps * kd_eps, {"kd_eps": kd_eps.item()}
    if v_s is not None and v_t is not None:
        kd_sigma = mean_flat((v_s.float() - v_t.float()) ** 2).mean()
        loss = loss + weights.sigma * kd_sigma
        logs["kd_sigma"] = kd_sigma.item()
    return loss, logs
