"""The denoising loop: any diffusers scheduler, classifier-free guidance, per-step callback.

The model is a callable ``model_fn(x, t, cond) -> eps`` (a learned-σ model's variance channels are
split off by the caller), so this loop knows nothing about networks, text or images.
"""

from __future__ import annotations

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


def guided_eps(model_fn: ModelFn, x: torch.Tensor, t: torch.Tensor, cond: Any, uncond: Any,
               guidance: Guidance) -> torch.Tensor:
    """ε_u + w (ε_c − ε_u), cond and uncond evaluated in one batch. ``guidance`` w may be a tensor that
    broadcasts against ε, to guide some frames or pixels more than others. ``w == 1`` everywhere or no
    ``uncond`` is the plain conditional model."""
    if uncond is None or bool(torch.all(torch.as_tensor(guidance) == 1.0)):
        return model_fn(x, t, cond)
    eps = model_fn(torch.cat([x, x], 0), torch.cat([t, t], 0), concat_cond(cond, uncond))  # (2B, C, ...)
    eps_c, eps_u = eps.chunk(2, 0)
    return eps_u + guidance * (eps_c - eps_u)


def _x0_preview(scheduler, out, x: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    x0 = getattr(out, "pred_original_sample", None)
    if x0 is not None:
        return x0
    # DPM-Solver++ returns no x0; it works in the VP parameterisation, so invert x_t = √ᾱ x0 + √(1−ᾱ) ε
    ac = scheduler.alphas_cumprod.to(x.device, torch.float32)[int(t)]
    return (x.float() - (1 - ac).sqrt() * eps.float()) / ac.sqrt()


@torch.no_grad()
def sample(model_fn: ModelFn, shape: tuple[int, ...], scheduler, steps: int,
           generator: torch.Generator | None = None, guidance: Guidance = 1.0, cond: Any = None,
           uncond: Any = None, callback: StepCallback | None = None, device: str | torch.device = "cpu",
           x_T: torch.Tensor | None = None) -> torch.Tensor:
    """Run ``steps`` denoising steps from Gaussian noise of ``shape``; returns x_0 (float32).

    ``callback(i, n, x0_preview)`` runs after every step — progress reports and cancellation live
    there (it may raise to stop the loop).
    """
    if steps < 1:
        raise ValueError(f"steps: {steps} must be ≥ 1")
    scheduler.set_timesteps(steps, device=device)
    if x_T is None:
        x_T = torch.randn(shape, generator=generator, device=generator.device if generator else "cpu")
    x = x_T.to(device, torch.float32) * scheduler.init_noise_sigma
    n = len(scheduler.timesteps)
    for i, t in enumerate(scheduler.timesteps):
        x_in = scheduler.scale_model_input(x, t)
        t_batch = t.expand(shape[0]).to(device)  # (B,)
        eps = guided_eps(model_fn, x_in, t_batch, cond, uncond, guidance).float()
        out = scheduler.step(eps, t, x, generator=generator)
        if callback is not None:
            callback(i, n, _x0_preview(scheduler, out, x, eps, t))
        x = out.prev_sample
    return x
