"""Spatial and temporal controls of the controllable LoRA (VFX Creator §3), each zero-initialised.

* ``MaskBranch`` — the instance-mask video, cut into the base's (pt, ph, pw) patches, goes through
  a few encoder blocks; block ``i``'s output enters main block ``i`` through a zero-initialised
  projection. No mask given ⇒ the branch is skipped ⇒ exactly the plain LoRA model.
* ``TimestampTokens`` — start and end time each become ``LayerNorm(W·log(t + t0) + b)`` with W, b
  zero-initialised (one embedder per endpoint) and fill the two context slots the base reserves
  after the text tokens; ``t0`` = one frame keeps ``log`` finite at t = 0.
  Measured flaw of that scalar feature: the token is a 1-D curve (a direction that turns with
  log t), and the trained one turns mostly below 0.5 s — end tokens for 1.0, 1.5 and 1.875 s have
  cosine ≥ 0.96 to each other, so the model cannot tell an end at frame 8 from one at frame 15
  (``docs/benchmarks/vfx_adapter_study.md``). ``periods_s`` adds Fourier features of t
  (sin/cos of 2πt/P) beside log t: ``LayerNorm(W·[log(t + t0), sin, cos …] + b)``, still zero-initialised.
* ``SkipFrameMix`` — not the paper's (its CogVideoX has no skip): the skip of a ``gated`` base passes each
  frame's own noisy input into that frame's prediction, so after an effect has ended every frame
  keeps its own noise and the object keeps flickering (``docs/benchmarks/vfx_adapter_bases.md``).
  This head lets the adapter replace each frame's skip input by an attention-weighted mix of the
  frames at the same pixel, ``x_s + α_s·(Σ_τ softmax_τ(q_s·k_τ/√d)·x_τ − x_s)``, from the last block's
  tokens (which have read the timestamp tokens), so frames that should agree can share their skip —
  a temporal kernel-predicting denoiser (Mildenhall et al. 2018, burst denoising). α = tanh(a) and q
  come from zero-initialised layers: at init α = 0, the exact identity.
  Measured (shipped recipe, 2000 steps, validation clips): it learned α ≈ −0.3 after the end — pushing
  the frames apart, not sharing — and timed no better (``docs/benchmarks/vfx_skip_mix_study.md``); even the
  ideal mix, written by hand, leaves the end late, as the network's own output reads each frame's noise
  too (``docs/benchmarks/vfx_skip_mix.md``).
* ``FrameHold`` — not the paper's either: per pixel and frame a hold h ∈ [0, 1] from the last block's
  tokens, applied to the prediction itself, ``y_f = h_f·y_{f−1} + (1 − h_f)·ẑ0_f`` (frame 0 is its own).
  Where the object is still (before the start, after the end) a frame may keep the frame before it, so
  the frames there stop carrying their own noise — in the skip *and* in the network's output, which
  ``SkipFrameMix`` could not reach. It starts where holding helps: at init the gradient on h after the
  end is (ẑ_{f−1} − ẑ_f)·(ẑ_f − z_f), which shrinks the frame's own error when the two frames' errors
  differ, while the mix's uniform initial weights pulled every frame towards the whole clip.
  h = clamp(a, 0, 1) with a from a zero-initialised layer: at init h = 0, the exact identity, and a
  still gets a gradient (clamp passes it at 0). Learned, not imposed: the head decides from what the
  network has read (timestamp tokens, mask, content) where and how much to hold.
  Measured: the clamp passes no gradient below 0, and trained on the frame loss alone 75–92% of the object's
  pixels sat at h = 0 at t ≤ 100 (that adapter, not shipped, held 0.05 after the end and 0.06 during the
  effect: ``docs/benchmarks/vfx_frame_hold_study.md``). A straight-through gradient (with the motion loss
  μ 1) diverged within 400 steps — the gradient norm went from 0.1 to hundreds and the frame loss from 0.03
  to 0.2 — so the clamp stays. ``[lora] hold_loss_weight`` ν supervises a itself instead (no dead zone):
  (a − s)² with s = 1 where the true clip does not change from the frame before, 0 where it does.
  Measured (ν 0.1, 2000 steps, validation clips): it holds 0.99 before the start, 0.40 during the effect and
  0.82 after the end, and the end is read on time (+0.07 frames, T-IoU 0.834 vs 0.651 without the hold);
  at 4000 steps (``adapters/vfx-mixed-4000``) validation T-IoU 0.879, E_f 2.8%, mask precision 0.942, effect
  accuracy 0.477 vs 0.669, 11.6%, 0.820, 0.432 without the hold; trained on to 16000 steps it is the default
  ``adapters/vfx-mixed`` (``docs/benchmarks/vfx_hold_16000_study.md``).
* ``EffectEmbed`` — not the paper's either: the effect's name (``--effect``) as a class label, a row of a
  zero-initialised table added to the conditioning vector of every block, as DiT embeds its ImageNet class.
  The paper trains one LoRA per effect and finds it names effects better than one mixed LoRA; this gives the
  mixed adapter the same categorical signal beside the prompt. The table is the adapter's own effect
  vocabulary (saved in ``controls.json``) plus a last, null row for an unknown name or the empty one (caption
  dropout drops the name with the prompt, so guidance steers from the null row). At init every row is 0, the
  exact identity. Measured (the frame-hold recipe at 2000 steps, validation clips): timing unchanged (T-IoU
  0.834), effect accuracy 0.273 vs 0.341 without it (``docs/benchmarks/vfx_effect_label_study.md``) — told the
  effect plainly, the adapter still does not draw it recognisably; not used by the shipped adapters.
* ``ActiveFrameEmbed`` — the rejected alternative: the per-frame "effect active" 0/1 vector,
  embedded by a zero-initialised linear map and added to the timestep embedding.

Which temporal control a model uses is a typed spec, not a flag.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

import torch
from torch import nn

from studio.core.blocks import EncoderBlock, FinalLayer
from studio.core.embeddings import PatchEmbed3d, sincos_3d, unpatchify_3d
from studio.lora.zero_init import ZeroInitProjection
from studio.tasks.vfx.model import TEXT_DIM, VideoDiT


@dataclass(frozen=True)
class TimestampTokensSpec:
    """Start/end tokens appended to the text (the paper's choice)."""

    offset_s: float = 0.125  # t0: one frame at 8 fps
    periods_s: tuple[float, ...] = ()  # Fourier features of t beside log t; () = the paper's log t alone

    def features(self, t_s: torch.Tensor) -> torch.Tensor:
        """(B,) seconds → (B, 1 + 2·len(periods_s)): log(t + t0), then sin/cos(2πt/P) per period."""
        t = t_s.float()[:, None]
        feats = [torch.log(t + self.offset_s)]
        if self.periods_s:
            angle = 2 * torch.pi * t / torch.tensor(self.periods_s, device=t.device)  # (B, P)
            feats += [angle.sin(), angle.cos()]
        return torch.cat(feats, 1)


@dataclass(frozen=True)
class ActiveVectorSpec:
    """Per-frame effect-active vector into the timestep embedding (the paper's rejected option)."""


@dataclass(frozen=True)
class FramePhaseSpec:
    """Diagnostic, not the paper's: each temporal token is told, per frame it covers, whether the
    effect has started (f ≥ start) and ended (f ≥ end) — two 0/1 flags, through a zero-initialised
    linear map added to the token before the first block. The most direct timing input there is:
    it measures what exact per-frame timing buys over tokens the network must learn to read.
    Measured (800 steps, ``docs/benchmarks/vfx_adapter_study.md``): nothing — the object still
    moves to the clip's last frame, so the late end is not a failure to read the time."""


@dataclass(frozen=True)
class NoTemporalControl:
    """No timing input: the effect happens whenever the model likes."""


TemporalSpec = Union[TimestampTokensSpec, ActiveVectorSpec, FramePhaseSpec, NoTemporalControl]
TEMPORAL = {"tokens": TimestampTokensSpec(),
            "tokens_fourier": TimestampTokensSpec(periods_s=(8.0, 4.0, 2.0, 1.0, 0.5, 0.25)),
            "active": ActiveVectorSpec(), "frame_phase": FramePhaseSpec(), "none": NoTemporalControl()}


@dataclass(frozen=True)
class MaskBranchSpec:
    blocks: int = 2  # encoder blocks in the branch = main blocks it feeds


@dataclass(frozen=True)
class ControlSpec:
    temporal: TemporalSpec = TimestampTokensSpec()
    mask: MaskBranchSpec | None = MaskBranchSpec()
    skip_mix: bool = False  # SkipFrameMix: the adapter may mix the skip input across frames
    hold: bool = False  # FrameHold: the adapter may keep the previous frame's prediction, per pixel
    effects: tuple[str, ...] = ()  # EffectEmbed's vocabulary: the effect names it embeds; () = no effect label

    def to_dict(self) -> dict:
        name = next(k for k, v in TEMPORAL.items() if v == self.temporal)
        return {"temporal": name, "mask_blocks": self.mask.blocks if self.mask else 0, "skip_mix": self.skip_mix,
                "hold": self.hold, "effects": list(self.effects)}

    @classmethod
    def from_dict(cls, d: dict) -> "ControlSpec":
        mb = int(d.get("mask_blocks", 0))
        return cls(TEMPORAL[d.get("temporal", "tokens")], MaskBranchSpec(mb) if mb else None,
                   bool(d.get("skip_mix", False)), bool(d.get("hold", False)), tuple(d.get("effects", ())))


class MaskBranch(nn.Module):
    def __init__(self, base: VideoDiT, spec: MaskBranchSpec):
        super().__init__()
        cfg = base.config
        if spec.blocks > cfg.depth:
            raise ValueError(f"mask_blocks: {spec.blocks} exceeds the base depth {cfg.depth}")
        self.patch = tuple(cfg.patch_size)
        self.embed = PatchEmbed3d(self.patch, 1, cfg.hidden_size)
        self.blocks = nn.ModuleList(EncoderBlock(cfg.hidden_size, cfg.num_heads) for _ in range(spec.blocks))
        self.out = nn.ModuleList(ZeroInitProjection(cfg.hidden_size, cfg.hidden_size) for _ in range(spec.blocks))
        self.hidden = cfg.hidden_size

    def forward(self, mask: torch.Tensor) -> list[torch.Tensor]:
        """``mask`` (B, 1, T, H, W) in {0, 1} → one (B, N, D) residual per fed main block."""
        grid = self.embed.grid(mask)
        h = self.embed(mask * 2.0 - 1.0) + sincos_3d(self.hidden, *grid, device=mask.device)[None].to(mask.dtype)
        outs = []
        for block, proj in zip(self.blocks, self.out):
            h = block(h, grid=grid)
            outs.append(proj(h))  # (B, N, D), zero at init
        return outs


class TimestampTokens(nn.Module):
    def __init__(self, spec: TimestampTokensSpec, dim: int = TEXT_DIM):
        super().__init__()
        self.spec = spec
        n = 1 + 2 * len(spec.periods_s)
        self.start = nn.Linear(n, dim)
        self.end = nn.Linear(n, dim)
        self.norm_start = nn.LayerNorm(dim)
        self.norm_end = nn.LayerNorm(dim)
        for lin in (self.start, self.end):  # zero W and b: both tokens are 0 = the base's reserved slots
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)

    def forward(self, start_s: torch.Tensor, end_s: torch.Tensor) -> torch.Tensor:
        """(B,), (B,) seconds → (B, 2, dim)."""
        ls, le = self.spec.features(start_s), self.spec.features(end_s)  # (B, F)
        w = self.start.weight
        return torch.stack([self.norm_start(self.start(ls.to(w.dtype))), self.norm_end(self.end(le.to(w.dtype)))], 1)


class SkipFrameMix(nn.Module):
    """Per pixel and frame: a query, a key (``dim`` each) and the mixing strength from the last block's tokens."""

    def __init__(self, base: VideoDiT, dim: int = 8):
        super().__init__()
        hidden, self.patch, self.dim = base.config.hidden_size, base.patch, dim
        elems = self.patch[0] * self.patch[1] * self.patch[2]
        self.query_strength = FinalLayer(hidden, elems, dim + 1)  # zero-initialised: q = 0, a = 0
        self.key = FinalLayer(hidden, elems, dim)
        nn.init.xavier_uniform_(self.key.linear.weight)  # keys start distinct, so q gets a gradient

    def forward(self, h: torch.Tensor, c: torch.Tensor, shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokens (B, N, D), conditioning (B, D), latent shape (B, C, T, H, W) → the mixing weights
        (B, T_out, T_in, H, W) (each row sums to 1) and the strength α (B, T, H, W) in (−1, 1)."""
        grid = tuple(n // p for n, p in zip(shape[2:], self.patch))
        qa = unpatchify_3d(self.query_strength(h, c), self.patch, grid, self.dim + 1).float()
        k = unpatchify_3d(self.key(h, c), self.patch, grid, self.dim).float()  # (B, d, T, H, W)
        logits = torch.einsum("bdsyx,bdtyx->bstyx", qa[:, : self.dim], k) / self.dim**0.5
        return logits.softmax(2), torch.tanh(qa[:, self.dim])


def mix_frames(x: torch.Tensor, weights: torch.Tensor, strength: torch.Tensor) -> torch.Tensor:
    """x (B, C, T, H, W) → x_s + α_s·(Σ_τ w_sτ·x_τ − x_s), per pixel; α = 0 returns x exactly."""
    mixed = torch.einsum("bstyx,bctyx->bcsyx", weights, x)
    return x + strength[:, None] * (mixed - x)


class FrameHold(nn.Module):
    """Per pixel and frame, the share h of the previous frame's prediction to keep, from the last block's tokens."""

    def __init__(self, base: VideoDiT):
        super().__init__()
        self.patch = base.patch
        self.head = FinalLayer(base.config.hidden_size, self.patch[0] * self.patch[1] * self.patch[2], 1)  # zero: h = 0

    def forward(self, h: torch.Tensor, c: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        """Tokens (B, N, D), conditioning (B, D), latent shape (B, C, T, H, W) → the raw hold a (B, T, H, W);
        the hold used is h = clamp(a, 0, 1) (``hold_frames``), and a supervised hold loss reads a itself."""
        grid = tuple(n // p for n, p in zip(shape[2:], self.patch))
        return unpatchify_3d(self.head(h, c), self.patch, grid, 1).float()[:, 0]


def hold_frames(z: torch.Tensor, hold: torch.Tensor) -> torch.Tensor:
    """z (B, C, T, H, W), raw hold (B, T, H, W) → y with y_0 = z_0 and y_f = h_f·y_{f−1} + (1 − h_f)·z_f,
    h = clamp(hold, 0, 1); h = 0 returns z."""
    hold = hold.clamp(0, 1)
    frames = [z[:, :, 0]]
    for f in range(1, z.shape[2]):
        h = hold[:, None, f]  # (B, 1, H, W)
        frames.append(h * frames[-1] + (1 - h) * z[:, :, f])
    return torch.stack(frames, 2)


class EffectEmbed(nn.Module):
    """Effect name → a row of a zero-initialised table (one per name + a null row), for the conditioning vector."""

    def __init__(self, names: tuple[str, ...], hidden: int):
        super().__init__()
        self.names = tuple(names)
        self.table = nn.Embedding(len(self.names) + 1, hidden)  # the last row: unknown or no effect
        nn.init.zeros_(self.table.weight)

    def index(self, names: list[str]) -> torch.Tensor:
        """Names → rows; one not in the vocabulary (or "") → the null row."""
        null = len(self.names)
        return torch.tensor([self.names.index(n) if n in self.names else null for n in names],
                            device=self.table.weight.device)

    def forward(self, names: list[str]) -> torch.Tensor:
        """B names → (B, D)."""
        return self.table(self.index(names))


class ActiveFrameEmbed(nn.Module):
    def __init__(self, frames: int, hidden: int):
        super().__init__()
        self.frames = frames
        self.proj = ZeroInitProjection(frames, hidden)

    def forward(self, start_s: torch.Tensor, end_s: torch.Tensor, fps: float) -> torch.Tensor:
        """(B,), (B,) seconds → (B, D): embedding of the per-frame 0/1 "effect active" vector."""
        f = torch.arange(self.frames, device=start_s.device, dtype=torch.float32)[None]  # (1, T)
        active = ((f >= start_s[:, None] * fps - 1e-3) & (f <= end_s[:, None] * fps + 1e-3)).float()  # (B, T)
        return self.proj(active.to(self.proj.weight.dtype))


class FramePhaseEmbed(nn.Module):
    def __init__(self, base: VideoDiT):
        super().__init__()
        self.patch = base.patch
        self.proj = ZeroInitProjection(2 * self.patch[0], base.config.hidden_size)

    def forward(self, start_s: torch.Tensor, end_s: torch.Tensor, fps: float, shape: tuple[int, ...]) -> torch.Tensor:
        """(B,), (B,) seconds, latent shape (B, C, T, H, W) → (B, N, D): per token, the started/ended
        flags of the frames it covers."""
        gt, gh, gw = (n // p for n, p in zip(shape[2:], self.patch))
        pt = self.patch[0]
        f = torch.arange(gt * pt, device=start_s.device, dtype=torch.float32)[None]  # (1, T)
        started = (f >= (start_s.float()[:, None] * fps).round()).float()
        ended = (f >= (end_s.float()[:, None] * fps).round()).float()
        flags = torch.stack([started, ended], -1).reshape(started.shape[0], gt, 2 * pt)
        e = self.proj(flags.to(self.proj.weight.dtype))  # (B, gt, D)
        return e[:, :, None].expand(-1, -1, gh * gw, -1).reshape(e.shape[0], gt * gh * gw, -1)


class VfxControls(nn.Module):
    """The non-LoRA part of a controllable adapter: mask branch + temporal control (+ the skip's frame mix and
    the frame hold, which ``VfxModel`` applies after the network; ``forward`` gives the network's inputs only)."""

    def __init__(self, base: VideoDiT, spec: ControlSpec, fps: float = 8.0):
        super().__init__()
        self.spec = spec
        self.fps = fps
        self.mask_branch = MaskBranch(base, spec.mask) if spec.mask is not None else None
        self.timestamps = TimestampTokens(spec.temporal) if isinstance(spec.temporal, TimestampTokensSpec) else None
        self.active = (ActiveFrameEmbed(base.config.sample_frames, base.config.hidden_size)
                       if isinstance(spec.temporal, ActiveVectorSpec) else None)
        self.phase = FramePhaseEmbed(base) if isinstance(spec.temporal, FramePhaseSpec) else None
        self.skip_mix = SkipFrameMix(base) if spec.skip_mix else None
        self.hold = FrameHold(base) if spec.hold else None
        self.effect = EffectEmbed(spec.effects, base.config.hidden_size) if spec.effects else None

    def forward(self, mask: torch.Tensor | None, start_s: torch.Tensor | None,
                end_s: torch.Tensor | None, shape: tuple[int, ...] | None = None,
                effects: list[str] | None = None) -> dict:
        """Keyword arguments for ``VideoDiT.forward``: ``block_residuals``, ``time_tokens``, ``cond_extra``.
        ``shape`` is the latent's (B, C, T, H, W) (needed by the frame-phase control only); ``effects`` the
        clips' effect names (read by the effect label only; None = the null row for every clip)."""
        kw: dict = {}
        if self.effect is not None and shape is not None:
            kw["cond_extra"] = self.effect(effects if effects is not None else [""] * shape[0])
        if self.mask_branch is not None and mask is not None:
            kw["block_residuals"] = self.mask_branch(mask)
        if start_s is not None and end_s is not None:
            if self.timestamps is not None:
                kw["time_tokens"] = self.timestamps(start_s, end_s)
            if self.active is not None:
                kw["cond_extra"] = kw.get("cond_extra", 0.0) + self.active(start_s, end_s, self.fps)
            if self.phase is not None:
                if shape is None:
                    raise ValueError("frame_phase: the latent shape is needed to place the frame flags")
                phase = self.phase(start_s, end_s, self.fps, shape)
                first = kw.get("block_residuals") or [0.0]
                kw["block_residuals"] = [first[0] + phase] + list(first[1:])
        return kw
