"""The denoising loop: any diffusers scheduler, classifier-free guidance, per-step callback.

The model is a callable ``model_fn(x, t, cond) -> eps`` (a learned-σ model's variance channels are
split off by the caller), so this loop knows nothing about networks, text or images.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable

import torch

ModelFn = Callable[[torch.Tensor, torch.Tensor, Any], torch.Tensor]
StepCallback = Callable[[int, int, torch.Tensor], None]  # (step index, total steps, x0 preview)


def concat_cond(a: Any, b: Any) -> Any:
    """Stack two conditionings along the batch: tensors, lists of strings (one per sample, e.g. labels),
    dicts/tuples of these, or None."""
    if a is None and b is None:
        return None
    if isinstance(a, torch.Tensor):
        return torch.cat([a, b], 0)
    if isinstance(a, list) and all(isinstance(x, str) for x in a + b):
        return a + b
    if isinstance(a, dict):
        return {k: concat_cond(a[k], b[k]) for k in a}
    if isinstance(a, (tuple, list)):
        return type(a)(concat_cond(x, y) for x, y in zip(a, b))
    raise TypeError(f"cannot batch conditioning of type {type(a).__name__}")


Guidance = float | torch.Tensor  # a scale, or a map of scales broadcast against ε (e.g. per frame or per pixel)


@dataclass(frozen=True)
class AutoGuide:
    """Autoguidance (Karras et al. 2024, "Guiding a diffusion model with a bad version of itself"): a weaker
    model of the same task — e.g. an earlier checkpoint of the same run — given the same conditioning, and the
    sampler steps away from its prediction: ε + (w − 1)(ε_c − ε_guide), which with no other guidance is
    ε_guide + w (ε_c − ε_guide). Unlike prompt guidance it needs no unconditional branch, and it pushes on what
    the longer-trained model learned beyond the weaker one rather than on the prompt alone. (diffusers'
    ``guiders.AutoGuidance`` builds its weak model by dropping layers of the same network; here it is any
    ``model_fn``.) ``min_timestep`` limits it to the noisier steps (training timesteps t ≥ it), as Kynkäänniemi
    et al. 2024 limit classifier-free guidance to an interval of noise levels."""

    model_fn: ModelFn
    scale: Guidance = 2.0
    min_timestep: float = 0.0  # guide only at t ≥ this (0 = every step)

    def active(self, t: torch.Tensor) -> bool:
        return not _is_one(self.scale) and float(t.reshape(-1)[0]) >= self.min_timestep


@dataclass(frozen=True)
class ClassifierGuide:
    """Classifier guidance (Dhariwal & Nichol 2021, §4.1): a classifier trained on noisy samples gives
    log p(y | x_t) of the wanted class through ``log_prob_fn(x, t, cond) -> (B,)``, and the sampler follows its
    gradient: ε − s·√(1−ᾱ_t)·∇ₓ log p(y | x_t), i.e. it samples p(x | y) ∝ p(x) p(y | x)^s. ``alphas_cumprod``
    is the schedule's ᾱ (the model input is in the VP parameterisation: ``scale_model_input``). ``min_timestep``
    limits it to the noisier steps (training timesteps t ≥ it). Steps where ᾱ < ``min_alpha_bar`` are never
    guided: there x_t carries no information about x_0 (p(y | x_t) = p(y), so the true gradient is 0), and the
    sampler's x̂0 = (x − √(1−ᾱ) ε) / √ᾱ would multiply the classifier's residual gradient by 1/√ᾱ (≈ 600 at the
    first step of a cosine schedule)."""

    log_prob_fn: Callable[[torch.Tensor, torch.Tensor, Any], torch.Tensor]
    alphas_cumprod: torch.Tensor
    scale: Guidance = 1.0  # or a map broadcast against ε: where to push (0 = not there)
    min_timestep: float = 0.0
    min_alpha_bar: float = 1e-3

    def active(self, t: torch.Tensor) -> bool:
        t0 = t.reshape(-1)[0]
        return (bool(torch.any(torch.as_tensor(self.scale) != 0.0)) and float(t0) >= self.min_timestep
                and float(self.alphas_cumprod[t0.long().cpu()]) >= self.min_alpha_bar)

    def eps_shift(self, x: torch.Tensor, t: torch.Tensor, cond: Any) -> torch.Tensor:
        """−s·√(1−ᾱ_t)·∇ₓ log p(y | x_t), the same shape as x."""
        with torch.enable_grad():
            x = x.detach().float().requires_grad_(True)
            (grad,) = torch.autograd.grad(self.log_prob_fn(x, t, cond).sum(), x)
        ac = self.alphas_cumprod.to(x.device, torch.float32)[t.long()].view(-1, *[1] * (x.dim() - 1))
        return -self.scale * (1 - ac).sqrt() * grad


@dataclass(frozen=True)
class NoiseSelection:
    """Best-of-N starting noise, chosen part way: each sample starts from ``candidates`` noises, all candidates run the
    steps with training timestep t ≥ ``at_timestep``, and before the first step below it ``score_fn(x_t, t, cond)``
    (higher = better, one score per row) picks the candidate that goes on; the rest are dropped. A noisy-sample
    classifier's log p(y | x_t) as the score keeps the start whose faint structure already reads as class y — a
    selection among the model's own samples (cf. seed search, and noise selection in Qi et al. 2024, "Not all noises
    are created equally"), where classifier guidance would push the sample. The caller's ``x_T`` holds the N·B
    candidates, candidate-major (row k·B + b is candidate k of sample b)."""

    score_fn: Callable[[torch.Tensor, torch.Tensor, Any], torch.Tensor]
    candidates: int = 4
    at_timestep: float = 800.0

    def pick(self, x_in: torch.Tensor, t: torch.Tensor, cond: Any, batch: int) -> torch.Tensor:
        """Rows of the best candidate of each sample, (B,)."""
        scores = self.score_fn(x_in, t.expand(x_in.shape[0]), cond).reshape(self.candidates, batch)
        return scores.argmax(0) * batch + torch.arange(batch, device=scores.device)


def repeat_batch(obj: Any, n: int, batch: int) -> Any:
    """``obj`` (a conditioning, a guidance map, a classifier guide) for n copies of a batch of ``batch``: what is
    per-sample (batch rows) is repeated candidate-major; scalars and broadcast maps stay as they are."""
    if isinstance(obj, torch.Tensor):
        return obj.repeat(n, *[1] * (obj.dim() - 1)) if obj.dim() and obj.shape[0] == batch else obj
    if isinstance(obj, ClassifierGuide):
        return replace(obj, scale=repeat_batch(obj.scale, n, batch))
    if isinstance(obj, dict):
        return {k: repeat_batch(v, n, batch) for k, v in obj.items()}
    if isinstance(obj, list) and len(obj) == batch and all(isinstance(x, str) for x in obj):
        return obj * n  # per-sample labels
    if isinstance(obj, (tuple, list)):
        return type(obj)(repeat_batch(x, n, batch) for x in obj)
    return obj  # a scalar, a string, None


def keep_rows(scheduler: Any, rows: torch.Tensor) -> None:
    """After a selection, the rows a multistep scheduler's history keeps (DPM-Solver++'s ``model_outputs``)."""
    history = getattr(scheduler, "model_outputs", None)
    if history is not None:
        scheduler.model_outputs = [m[rows] if isinstance(m, torch.Tensor) else m for m in history]


def _is_one(scale: Guidance) -> bool:
    return bool(torch.all(torch.as_tensor(scale) == 1.0))


def guided_eps(model_fn: ModelFn, x: torch.Tensor, t: torch.Tensor, cond: Any, uncond: Any,
               guidance: Guidance, guide: AutoGuide | None = None,
               classifier: ClassifierGuide | None = None) -> torch.Tensor:
    """ε_u + w (ε_c − ε_u), cond and uncond evaluated in one batch. ``guidance`` w may be a tensor that
    broadcasts against ε, to guide some frames or pixels more than others. ``w == 1`` everywhere or no
    ``uncond`` is the plain conditional model. A ``guide`` adds autoguidance on top, (w_g − 1)(ε_c − ε_guide),
    the guide model seeing the conditional inputs (one more model call per step). A ``classifier`` adds
    classifier guidance (``ClassifierGuide``: one classifier forward and backward per step)."""
    if uncond is None or _is_one(guidance):
        eps = eps_c = model_fn(x, t, cond)
    else:
        both = model_fn(torch.cat([x, x], 0), torch.cat([t, t], 0), concat_cond(cond, uncond))  # (2B, C, ...)
        eps_c, eps_u = both.chunk(2, 0)
        eps = eps_u + guidance * (eps_c - eps_u)
    if guide is not None and guide.active(t):
        eps = eps + (guide.scale - 1.0) * (eps_c - guide.model_fn(x, t, cond))
    if classifier is not None and classifier.active(t):
        eps = eps + classifier.eps_shift(x, t, cond).to(eps.dtype)
    return eps


def _x0_preview(scheduler, out, x: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    x0 = getattr(out, "pred_original_sample", None)
    if x0 is not None:
        return x0
    # DPM-Solver++ returns no x0; it works in the VP parameterisation, so invert x_t = √ᾱ x0 + √(1−ᾱ) ε
    ac = scheduler.alphas_cumprod.to(x.device, torch.float32)[int(t)]
    return (x.float() - (1 - ac).sqrt() * eps.float()) / ac.sqrt()


def skipped_steps(steps: int, denoise: float) -> int:
    """How many of the first ``steps`` an init sample stands in for at ``denoise`` (at least one step runs)."""
    return steps - max(1, round(steps * denoise))


@torch.no_grad()
def sample(model_fn: ModelFn, shape: tuple[int, ...], scheduler, steps: int,
           generator: torch.Generator | None = None, guidance: Guidance = 1.0, cond: Any = None,
           uncond: Any = None, callback: StepCallback | None = None, device: str | torch.device = "cpu",
           x_T: torch.Tensor | None = None, guide: AutoGuide | None = None, init: torch.Tensor | None = None,
           denoise: float = 1.0, guidance_min_timestep: float = 0.0,
           classifier: ClassifierGuide | None = None, selection: NoiseSelection | None = None) -> torch.Tensor:
    """Run ``steps`` denoising steps from Gaussian noise of ``shape``; returns x_0 (float32).

    ``callback(i, n, x0_preview)`` runs after every step — progress reports and cancellation live
    there (it may raise to stop the loop). ``guide``: autoguidance by a weaker model (``AutoGuide``);
    ``classifier``: classifier guidance by a noise-aware classifier (``ClassifierGuide``).
    ``guidance_min_timestep``: prompt guidance only at training timesteps t ≥ it (a limited interval, Kynkäänniemi et
    al. 2024; elsewhere the plain conditional model, without the unguided pass).
    ``denoise`` < 1 with an ``init`` sample (SDEdit, Meng et al. 2022; diffusers' img2img ``strength``, ComfyUI's
    ``denoise``): ``init`` is noised to the level of the last ``denoise`` share of the steps and only those run.
    ``selection`` (``NoiseSelection``): ``x_T`` holds N candidates per sample; the best one at its timestep goes on
    (a multistep sampler's history of model outputs keeps the same rows). Until then the callback's preview has all
    N·B rows.
    """
    if steps < 1:
        raise ValueError(f"steps: {steps} must be ≥ 1")
    if not 0.0 < denoise <= 1.0:
        raise ValueError(f"denoise: {denoise} must be in (0, 1]")
    if denoise < 1.0 and init is None:
        raise ValueError("denoise: < 1 needs an init sample to start from")
    scheduler.set_timesteps(steps, device=device)
    if x_T is None:
        x_T = torch.randn(shape, generator=generator, device=generator.device if generator else "cpu")
    skip = skipped_steps(steps, denoise)
    timesteps = scheduler.timesteps[skip * scheduler.order:]
    if skip:
        if hasattr(scheduler, "set_begin_index"):
            scheduler.set_begin_index(skip * scheduler.order)
        x = scheduler.add_noise(init.to(device, torch.float32), x_T.to(device, torch.float32), timesteps[:1])
    else:
        x = x_T.to(device, torch.float32) * scheduler.init_noise_sigma
    n, batch = len(timesteps), shape[0]
    per_sample = (cond, uncond, guidance, classifier)
    if selection is not None:
        if scheduler.order != 1:
            raise ValueError("selection: needs a sampler of order 1 (ddim, euler, ddpm, dpm++)")
        if skip:
            raise ValueError("selection: starts from noise; not with an init sample (denoise < 1)")
        if x.shape[0] != selection.candidates * batch:
            raise ValueError(f"selection: x_T has {x.shape[0]} rows; {selection.candidates} candidates of "
                             f"{batch} samples need {selection.candidates * batch}")
        per_sample = tuple(repeat_batch(o, selection.candidates, batch) for o in per_sample)
    for i, t in enumerate(timesteps):
        x_in = scheduler.scale_model_input(x, t)
        if selection is not None and x.shape[0] != batch and float(t) < selection.at_timestep:
            rows = selection.pick(x_in, t.to(device), per_sample[0], batch)
            x, x_in, per_sample = x[rows], x_in[rows], (cond, uncond, guidance, classifier)
            keep_rows(scheduler, rows)
        c, u, g, cls = per_sample
        t_batch = t.expand(x.shape[0]).to(device)  # (B,) — N·B while candidates run
        w = g if float(t) >= guidance_min_timestep else 1.0
        eps = guided_eps(model_fn, x_in, t_batch, c, u, w, guide, cls).float()
        out = scheduler.step(eps, t, x, generator=generator)
        if callback is not None:
            callback(i, n, _x0_preview(scheduler, out, x, eps, t))
        x = out.prev_sample
    if x.shape[0] != batch:  # no step came below the selection's timestep: choose among the finished samples
        x = x[selection.pick(x, torch.zeros((), dtype=torch.long, device=x.device), per_sample[0], batch)]
    return x
