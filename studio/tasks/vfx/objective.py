"""What the denoiser models, how a batch becomes a loss, and the sampling-side model function.

Representation (documented choice, VAE-free): the clip is modelled as its *change from the
reference frame*, ``z = 2·(video − reference)`` in pixel space ([-1, 1] pixels), 32×32, 16 frames.
The factor 2 (like Stable Diffusion's latent scale) brings moving regions to about unit scale;
without it the motion (std ≈ 0.07) drowned in the noise already at t ≈ 100 of 1000, so most
training steps taught nothing.
Still frames are exactly zero in this space, so "nothing happens before the start" is the easy
default the model has to be pushed away from, not a detail it has to copy. Decoding adds the
reference back. Prediction target: the clean latent z0 ("sample" prediction), converted to ε for
the shared sampler. (v-prediction, VFX Creator's choice on CogVideoX, was tried first: on this
mostly-zero residual it stayed worse than predicting zero after 300 steps at this size, because at
low noise v ≈ ε has to be read off an input 100× smaller than the target; z0-prediction learns
at once and keeps still regions exactly still.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from studio.diffusion import NoiseSpec, add_noise, mixed_noise, sample_timesteps
from studio.tasks.vfx.controls import VfxControls, hold_frames, mix_frames
from studio.tasks.vfx.model import VideoDiT

NOISE = NoiseSpec(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2")
LATENT_SCALE = 2.0
Z_MAX = 2.0 * LATENT_SCALE  # |video − reference| ≤ 2 in [-1, 1] pixels


def to_unit(frames_uint8: torch.Tensor) -> torch.Tensor:
    """(B, T, H, W, 3) uint8 → (B, 3, T, H, W) float in [-1, 1]."""
    return frames_uint8.permute(0, 4, 1, 2, 3).float() / 127.5 - 1.0


def encode(video: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """(B, 3, T, H, W), (B, 3, H, W) in [-1, 1] → the residual latent z."""
    return (video - ref[:, :, None]) * LATENT_SCALE


def decode(z: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    return (z / LATENT_SCALE + ref[:, :, None]).clamp(-1, 1)


def to_uint8(video: torch.Tensor) -> torch.Tensor:
    """(B, 3, T, H, W) in [-1, 1] → (B, T, H, W, 3) uint8."""
    return ((video.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 4, 1)


GATE_BIAS = 4.0  # a zero-initialised gate starts nearly open (0.98): the EDM start
SIGMA_DATA = 0.25  # std of the residual latent over training clips (measured: 0.25 generic, 0.28 effects)


def alphas_cumprod() -> torch.Tensor:
    from studio.diffusion import scheduler_from_spec

    return scheduler_from_spec("ddpm", NOISE).alphas_cumprod.float()


class VfxModel(nn.Module):
    """The base video DiT (with any peft LoRA injected into it) + optional controls, returning ẑ0.

    How the network output F becomes ẑ0 is the base's ``preconditioning`` (its config):

    * ``edm`` — EDM (Karras et al. 2022) written for the VP process x_t = √ᾱ z0 + √(1−ᾱ) ε:
      ẑ0 = c_skip·x_t + c_out·F, c_skip·x_t being the best linear guess of z0 for data of std σ_d.
      A zero-initialised F starts at the linear optimum instead of at "predict 0". Its flaw here:
      at low noise c_skip ≈ 1, so F has to cancel the noise pixel by pixel, and a token of 96
      numbers cannot carry the 384 independent noise values of its (2, 8, 8) patch — the noise
      passed straight through (held-out error at t = 50 equal to the noise itself), and still
      pixels flickered in every generated clip (``docs/benchmarks/vfx_loss.md``).
    * ``gated`` — the same with a per-pixel gate g = sigmoid(a + 4) from an extra output channel
      scaling the skip: where the network knows nothing moves it can shut the noise out.
    * ``gated_mean`` — the skip input split along time: ẑ0 = c_skip·(g_m·x̄_t + g_f·(x_t − x̄_t)) + c_out·F,
      x̄_t the clip's frame mean of x_t, g_m and g_f per-pixel gates from two extra channels. A ``gated``
      base keeps its one gate open inside an object whose effect has ended (0.75–0.85 vs ≤ 0.03 before
      the start, ``docs/benchmarks/vfx_adapter_bases.md``) and so passes each frame's own noise into that
      frame; here it could keep the details the frames share (g_m) and shut out what differs (g_f).
      Measured: it does not — g_f stays open after the end too (0.90), and the end is as late.
    * ``x`` — ẑ0 = σ_d·F: the network predicts the clean latent, which lies on a low-dimensional
      manifold a large patch can represent, while noise cannot (JiT, Li & He 2025).

    An adapter with ``skip_mix`` (``controls.SkipFrameMix``) replaces the skip input x_t by its own mix of
    the frames at each pixel, under any of the skips above (``x`` has none, so there it does nothing).
    An adapter with ``hold`` (``controls.FrameHold``) lets each frame of ẑ0 keep the previous frame's, per pixel.

    σ_d must be the data's real std: with σ_d = 0.5 the EDM skip injected noise the network then
    had to learn to cancel, and the loss sat above "predict 0" for 50 steps.
    """

    def __init__(self, dit: VideoDiT, controls: VfxControls | None = None, sigma_data: float = SIGMA_DATA):
        super().__init__()
        self.dit = dit
        self.controls = controls
        self.sigma_data = sigma_data
        self.preconditioning = dit.config.get("preconditioning", "edm")
        self.noise_correlation = float(dit.config.get("frame_noise_correlation", 0.0))
        self.register_buffer("alphas_cumprod", alphas_cumprod(), persistent=False)

    def network(self, x: torch.Tensor, t: torch.Tensor, cond: dict[str, Any]) -> torch.Tensor:
        """The raw network output F (with the gate channel(s) last for a gated base)."""
        return self._run(x, t, cond)[0]

    def _run(self, x: torch.Tensor, t: torch.Tensor, cond: dict[str, Any]) -> tuple:
        """F, the skip's frame mix (weights, strength) and the frame hold h — each None when the adapter lacks it."""
        extra, mixer, holder = {}, None, None
        if self.controls is not None:
            extra = self.controls(cond.get("mask"), cond.get("start_s"), cond.get("end_s"), tuple(x.shape),
                                  cond.get("effect"))
            mixer, holder = self.controls.skip_mix, self.controls.hold
        hidden = mixer is not None or holder is not None
        out = self.dit(x, t, cond["ref"], cond["context"], cond["context_mask"], cond["pooled"],
                       return_hidden=hidden, **extra)
        if not hidden:
            return out.float(), None, None
        f, h, c = out
        shape = tuple(x.shape)
        return (f.float(), None if mixer is None else mixer(h, c, shape),
                None if holder is None else holder(h, c, shape))

    def skip_gate(self, x: torch.Tensor, t: torch.Tensor, cond: dict[str, Any]) -> torch.Tensor | None:
        """The per-pixel skip gate (B, T, H, W) on each frame's own noisy input (1 = it passes) of a
        ``gated`` base (its one gate) or a ``gated_mean`` one (the gate on the frame's deviation), else None."""
        if self.preconditioning not in ("gated", "gated_mean"):
            return None
        return torch.sigmoid(self.network(x, t, cond)[:, -1] + GATE_BIAS)

    def frame_mix(self, x: torch.Tensor, t: torch.Tensor, cond: dict[str, Any]) -> tuple | None:
        """The adapter's frame mix of the skip — weights (B, T_out, T_in, H, W), strength (B, T, H, W) —
        or None without ``skip_mix``."""
        return self._run(x, t, cond)[1]

    def frame_hold(self, x: torch.Tensor, t: torch.Tensor, cond: dict[str, Any]) -> torch.Tensor | None:
        """The adapter's frame hold h (B, T, H, W) (1 = the frame keeps the previous one), or None without ``hold``."""
        hold = self._run(x, t, cond)[2]
        return None if hold is None else hold.clamp(0, 1)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: dict[str, Any]) -> torch.Tensor:
        return self.predict(x, t, cond)[0]

    def predict(self, x: torch.Tensor, t: torch.Tensor, cond: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """ẑ0, and the raw frame hold a (B, T, H, W) it was held with (None without ``hold``)."""
        f, mix, hold = self._run(x, t, cond)
        z0 = self._z0(x, t, f, mix)
        return (z0, None) if hold is None else (hold_frames(z0, hold), hold)

    def _z0(self, x: torch.Tensor, t: torch.Tensor, f: torch.Tensor, mix: tuple | None) -> torch.Tensor:
        """ẑ0 from the network output F under the base's preconditioning (the skip mixed first, if any)."""
        if self.preconditioning == "x":
            return self.sigma_data * f
        ac = self.alphas_cumprod[t.long()].view(-1, 1, 1, 1, 1)  # (B, 1, 1, 1, 1)
        s2 = self.sigma_data**2
        denom = ac * s2 + (1 - ac)
        c_skip = ac.sqrt() * s2 / denom
        c_out = self.sigma_data * (1 - ac).sqrt() / denom.sqrt()
        x = x.float() if mix is None else mix_frames(x.float(), *mix)  # the adapter's frame mix of the skip
        if self.preconditioning == "gated":
            c_skip = c_skip * torch.sigmoid(f[:, -1:] + GATE_BIAS)  # (B, 1, T, H, W): per pixel
            f = f[:, :-1]
        elif self.preconditioning == "gated_mean":
            mean = x.mean(2, keepdim=True)  # (B, C, 1, H, W): the frames' shared part
            g_mean, g_own = torch.sigmoid(f[:, -2:-1] + GATE_BIAS), torch.sigmoid(f[:, -1:] + GATE_BIAS)
            x = g_mean * mean + g_own * (x - mean)
            f = f[:, :-2]
        return c_skip * x + c_out * f


@dataclass
class Objective:
    """z0-prediction MSE on the residual latent; ``objective(model, batch) -> (loss, logs)``.

    ``caption_dropout`` replaces prompts (and effect names, for an adapter with an effect label) by the empty
    caption (reference, mask and times stay), so the model also learns the text-unconditional branch that
    classifier-free guidance steers from.

    ``mask_weight`` λ weights the error inside the object's mask (every frame) by 1 + λ, the
    weights normalised to mean 1: the masked object is ~3% of the latent but carries most of what
    an effect adapter must learn (``docs/benchmarks/vfx_loss.md``). The weight comes from the
    clip's annotation, so it applies whether or not the model is *given* the mask.

    ``after_end_weight`` adds to the weight of the object's frames from the true end on, where the
    shipped adapters keep changing the object although the truth holds still.

    ``motion_weight`` μ adds a temporal-difference term: the error of the predicted frame-to-frame
    change, ``(Δẑ0 − Δz0)²`` along time, weighted like the frame error. Once an effect ends its
    result holds still (Δz0 = 0), a target with no uncertainty even where the final state itself is
    uncertain (where the fragments land), so this term teaches the end — and that the picture does
    not jump between temporal tokens — more directly than the frame error (``docs/benchmarks/vfx.md``,
    "motion after the end").

    ``hold_weight`` ν (an adapter with ``hold``) adds ``(a − s)²`` on the raw frame hold, s = ``still_map``
    of the true clip, weighted like the frame error: where the clip is still the hold is taught to keep the
    frame before, where it changes to let go.

    ``timestep_weights`` (``studio.diffusion.timestep_weights``) draws the training timesteps non-uniformly, e.g.
    more of the noisiest ones, where a clip's effect is decided (``docs/benchmarks/vfx_timestep_bias_study.md``).
    """

    scheduler: Any  # a diffusers scheduler holding ᾱ (DDPM)
    text: Any  # TextEncoder (studio.core.text)
    use_mask: bool = True
    use_time: bool = True
    mask_weight: float = 0.0
    caption_dropout: float = 0.0  # prompts → "" with this probability: the unguided branch of CFG
    motion_weight: float = 0.0  # μ: weight of the temporal-difference (frame-to-frame change) error
    after_end_weight: float = 0.0  # extra weight on the object's frames from the true end on
    fps: float = 8.0  # frames per second of the clips (end_s → end frame)
    hold_weight: float = 0.0  # ν: supervise the raw frame hold a towards the truth's still map (a ``hold`` adapter)
    timestep_weights: torch.Tensor | None = None  # training timesteps drawn with these weights (None: uniform)

    def __call__(self, model: VfxModel, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        device = next(model.parameters()).device
        if self.caption_dropout:  # the prompt and the effect's name go together: the unguided branch has neither
            drop = torch.rand(len(batch["prompt"])).lt(self.caption_dropout).tolist()
            batch = {**batch, "prompt": ["" if d else p for p, d in zip(batch["prompt"], drop)]}
            if "effect_name" in batch:
                batch["effect_name"] = ["" if d else n for n, d in zip(batch["effect_name"], drop)]
        cond, z0 = make_cond(batch, self.text, device, self.use_mask, self.use_time)
        B = z0.shape[0]
        t = sample_timesteps(B, NOISE.num_train_timesteps, device=device, weights=self.timestep_weights)
        rho = getattr(model, "noise_correlation", 0.0)  # the base's frame noise correlation
        noise = mixed_noise(z0.shape, rho, dim=2, device=device)  # (B, C, T, H, W)
        zt = add_noise(self.scheduler, z0, noise, t)
        out, hold = model.predict(zt, t, cond) if hasattr(model, "predict") else (model(zt, t, cond), None)
        diff = out.float() - z0
        obj = ref_mask_video(batch["ref_mask"].to(device), z0.shape[2])  # (B, 1, T, H, W)
        w = 1.0 + self.mask_weight * obj
        if self.after_end_weight:
            w = w + self.after_end_weight * obj * after_end(batch["end_s"].to(device), z0.shape[2], self.fps)
        frame = weighted_mean(diff.pow(2), w)
        loss, logs = frame, {}
        if self.motion_weight:
            motion = weighted_mean(diff.diff(dim=2).pow(2), w[:, :, 1:])  # Δẑ0 − Δz0 = Δ(ẑ0 − z0)
            loss, logs = loss + self.motion_weight * motion, {**logs, "motion_loss": motion.item()}
        if self.hold_weight and hold is not None:
            held = weighted_mean((hold[:, None, 1:] - still_map(z0)).pow(2), w[:, :, 1:])
            loss, logs = loss + self.hold_weight * held, {**logs, "hold_loss": held.item()}
        return loss, ({"frame_loss": frame.item(), **logs} if logs else {})


def still_map(z0: torch.Tensor, tol: float = 0.5 * LATENT_SCALE * 2 / 255) -> torch.Tensor:
    """(B, C, T, H, W) true latent → (B, 1, T−1, H, W): 1 where frame f equals frame f−1 (within half a grey
    level, every channel), 0 where it changes — the hold a still clip calls for."""
    return (z0.diff(dim=2).abs().amax(1, keepdim=True) < tol).float()


def after_end(end_s: torch.Tensor, frames: int, fps: float) -> torch.Tensor:
    """(B,) end times in seconds → (B, 1, T, 1, 1) float: 1 on frames at or after the end frame."""
    f = torch.arange(frames, device=end_s.device, dtype=torch.float32)
    return (f[None] >= (end_s.float()[:, None] * fps).round()).float()[:, None, :, None, None]


def weighted_mean(err: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Mean of ``err`` weighted by ``w`` (broadcast), the weights normalised to mean 1."""
    return (err * w).mean() / w.mean()


def make_cond(batch: dict[str, Any], text: Any, device, use_mask: bool = True,
              use_time: bool = True) -> tuple[dict[str, Any], torch.Tensor]:
    video = to_unit(batch["frames"].to(device))  # (B, 3, T, H, W)
    ref = video[:, :, 0]
    emb = text.encode(list(batch["prompt"]))
    cond = {"ref": ref, "context": emb.tokens.to(device), "context_mask": emb.mask.to(device),
            "pooled": emb.pooled.to(device)}
    if "effect_name" in batch:
        cond["effect"] = list(batch["effect_name"])
    if use_mask:
        cond["mask"] = ref_mask_video(batch["ref_mask"].to(device), video.shape[2])
    if use_time:
        cond["start_s"] = batch["start_s"].to(device).float()
        cond["end_s"] = batch["end_s"].to(device).float()
    return cond, encode(video, ref)


def ref_mask_video(ref_mask: torch.Tensor, frames: int) -> torch.Tensor:
    """(B, H, W) bool mask the user paints on the reference → (B, 1, T, H, W) float mask video."""
    return ref_mask.float()[:, None, None].expand(-1, 1, frames, -1, -1).contiguous()


def eps_model_fn(model: VfxModel, scheduler: Any):
    """The shared sampler wants ε: ε = (x_t − √ᾱ·ẑ0) / √(1−ᾱ) (DDIM / DPM++ recover ẑ0 exactly)."""

    def fn(x: torch.Tensor, t: torch.Tensor, cond: dict[str, Any]) -> torch.Tensor:
        ac = scheduler.alphas_cumprod.to(x.device, torch.float32)[t.long()].view(-1, 1, 1, 1, 1)
        z0 = model(x, t, cond).float().clamp(-Z_MAX, Z_MAX)
        return (x.float() - ac.sqrt() * z0) / (1 - ac).sqrt()

    return fn


@torch.no_grad()
def held_out_loss(model: VfxModel, objective: Objective, dataset, batch_size: int = 16, seed: int = 0,
                  bf16: bool = True) -> float:
    """The objective on a held-out dataset with fixed noise and timesteps (comparable across models)."""
    from torch.utils.data import DataLoader

    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    model.eval()
    total, n = 0.0, 0
    try:
        for batch in DataLoader(dataset, batch_size=batch_size):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss, _ = objective(model, batch)
            total += loss.item() * len(batch["prompt"])
            n += len(batch["prompt"])
    finally:
        torch.random.set_rng_state(state)
    return total / max(n, 1)
