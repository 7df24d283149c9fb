"""How much of the late end sharing frames after the end could remove — the skip's frame mix and the frame
hold, learned and at their ideal.

Inside an object whose effect has ended, the shipped gated base keeps its skip open, so each
frame's own share of the noise passes into that frame (``docs/benchmarks/vfx_adapter_bases.md``).
An adapter with ``skip_mix`` (``controls.SkipFrameMix``) may replace each frame's skip input by a
mix of the frames; this script scores, on validation clips (not the eval's, no training seed):

* the reference adapter as it is (``--reference``: a plain one, no mix and no hold — the default before the
  frame hold, ``vfx-mixed-nohold``);
* adapters trained with ``skip_mix`` (as many as named);
* the reference adapter with the *ideal* skip mix written by hand: after the requested end every
  frame's skip input is the after-end frames' mean (the network itself still sees x_t) — the most
  a skip mix can do;
* adapters trained with ``hold`` (``controls.FrameHold``) are named the same way;
* the reference adapter with the *ideal* frame hold written by hand: from the requested end on every frame of
  ẑ0 keeps the frame before it (h = 1) — the most a learned hold can do, and, like the tie below, a hold by
  construction, so a bound and not a method;
* a diagnostic, not a method: the after-end frames of x_t tied to their mean for the network too
  (the noise of those frames made one; a "hold" by construction, so it is not offered to users).

    python scripts/vfx_skip_mix.py "skip_mix=runs/vfx/skipmix_mixed" --out docs/benchmarks/vfx_skip_mix.md
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from studio.tasks.vfx.evaluate import VALIDATION_SEED
from studio.tasks.vfx.objective import VfxModel, after_end

KEYS = ("t_iou", "frame_error_pct", "end_bias", "after_end_motion", "mask_precision", "effect_accuracy")
REFERENCE = "vfx-mixed-nohold"  # the plain adapter (no mix, no hold) the ideal mix and hold are written onto


def after_end_mean(x: torch.Tensor, end_s: torch.Tensor, fps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The ideal frame mix: frames from the requested end on take their mean, the rest themselves
    → (weights (B, T, T, H, W), strength (B, T, H, W))."""
    B, _, T, H, W = x.shape
    after = after_end(end_s, T, fps)[:, 0, :, 0, 0].bool()  # (B, T): the end frame and every later one
    both = (after[:, :, None] & after[:, None, :]).float()
    w = torch.where(after[:, :, None], both / after.sum(1).clamp(min=1)[:, None, None], torch.eye(T)[None])
    return w[..., None, None].expand(B, T, T, H, W), torch.ones(B, T, H, W)


class IdealSkipMix(VfxModel):
    """The loaded model with the hand-written after-end mean as its skip's frame mix."""

    def _run(self, x, t, cond):
        f, _, hold = super()._run(x, t, cond)
        return f, after_end_mean(x, cond["end_s"], self.controls.fps), hold


def after_end_hold(end_s: torch.Tensor, shape: tuple[int, ...], fps: float) -> torch.Tensor:
    """The ideal frame hold for a latent of ``shape`` (B, C, T, H, W): h = 1 on every frame after the requested end
    frame (each keeps the one before, so all equal the end frame), 0 elsewhere → (B, T, H, W)."""
    B, _, T, H, W = shape
    after = after_end(end_s, T, fps)[:, 0, :, 0, 0]  # (B, T): the end frame and every later one
    later = torch.cat([torch.zeros_like(after[:, :1]), after[:, :-1]], 1)  # frame f > end ⇔ frame f − 1 ≥ end
    return later[:, :, None, None].expand(B, T, H, W)


class IdealHold(VfxModel):
    """The loaded model with ẑ0 held from the requested end frame on."""

    def forward(self, x, t, cond):
        from studio.tasks.vfx.controls import hold_frames

        z0 = super().forward(x, t, cond)
        return hold_frames(z0, after_end_hold(cond["end_s"], tuple(z0.shape), self.controls.fps))


class TiedAfterEnd(VfxModel):
    """Diagnostic: x_t's after-end frames replaced by their mean before anything reads them."""

    def forward(self, x, t, cond):
        from studio.tasks.vfx.controls import mix_frames

        return super().forward(mix_frames(x.float(), *after_end_mean(x, cond["end_s"], self.controls.fps)), t, cond)


def sweep(adapters: list[tuple[str, str]], per_effect: int, steps: int, reference: str = REFERENCE) -> list[dict]:
    from studio.paths import model_path
    from studio.tasks.vfx import evaluate as ev
    from studio.tasks.vfx.classifier import load_classifier
    from studio.tasks.vfx.pipeline import VfxPipeline

    clips = ev.held_out(per_effect, seed=VALIDATION_SEED)
    classifier = load_classifier(model_path("vfx-base") / "effect_classifier.safetensors")
    runs = [(f"reference `{reference}`", reference, VfxModel)] + [(label, path, VfxModel) for label, path in adapters]
    runs += [("reference + ideal skip mix (after-end mean, by hand)", reference, IdealSkipMix),
             ("reference + ideal frame hold (ẑ0 held from the requested end, by hand: a bound)", reference, IdealHold),
             ("diagnostic: reference, after-end frames of x_t tied (a hold by construction)", reference, TiedAfterEnd)]
    rows = []
    for label, adapter, kind in runs:
        pipe = VfxPipeline.load("vfx-base", ((adapter, 1.0),))
        pipe.model = kind(pipe.model.dit, pipe.model.controls).eval()  # same weights; only how ẑ0 is formed differs
        r = ev.score(clips, ev.generate(ev.Variant(label, (adapter,)), clips, steps, pipe=pipe), classifier)
        rows.append({"label": label, **{k: r[k] for k in KEYS}})
        print(rows[-1], flush=True)
    return rows


def render(rows: list[dict], n: int, steps: int, seconds: float, command: str) -> str:
    lines = ["# VFX: sharing the frames after the end — skip mix and frame hold (`scripts/vfx_skip_mix.py`)", "",
             f"`models/vfx-base` + the adapter named, {n} validation clips (seed {VALIDATION_SEED}: not the eval's, no "
             f"training seed), {steps} DDIM steps. *after end*: mean motion inside the object from the true end on "
             "(grey levels; the truth has none). Detector floor 3 grey levels (`vfx_detector.md`).", "",
             "| model | T-IoU | E_f (% clip) | end bias (frames) | after end | mask precision | effect acc. |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['label']} | {r['t_iou']:.3f} | {r['frame_error_pct']:.1f}% | {r['end_bias']:+.2f} | "
              f"{r['after_end_motion']:.2f} | {r['mask_precision']:.3f} | {r['effect_accuracy']:.3f} |" for r in rows]
    shipped, ideal, held, tied = rows[0], rows[-3], rows[-2], rows[-1]
    lines += ["", f"Reading: the ideal skip mix takes the motion after the end from {shipped['after_end_motion']:.1f} to "
              f"{ideal['after_end_motion']:.1f} grey levels but leaves the end {ideal['end_bias']:+.2f} frames late (T-IoU "
              f"{shipped['t_iou']:.3f} → {ideal['t_iou']:.3f}): what is left is the network's own output F, which reads "
              "each frame's noise from its input. Only tying those frames of x_t for the network as well stops the "
              f"object (end bias {tied['end_bias']:+.2f}, T-IoU {tied['t_iou']:.3f}) — a hold imposed by the sampler, not "
              "learned timing, so it stays a diagnostic. Holding ẑ0 itself from the requested end on — the bound on a "
              f"learned frame hold — gives end bias {held['end_bias']:+.2f}, T-IoU {held['t_iou']:.3f}, E_f "
              f"{held['frame_error_pct']:.1f}%. A learned mix or hold has to beat the reference row to be worth its "
              "parameters; what one learned (its strength and weights, or its hold, after the end) is read in "
              "`vfx_skip_mix_study.md` and `vfx_frame_hold_study.md` (`scripts/vfx_adapter_study.py --clips-seed "
              f"{VALIDATION_SEED}`).", "",
              f"{seconds:.0f} s on this machine. Reproduce: `{command}`.", ""]
    return "\n".join(lines)


def main() -> None:
    from studio.tasks.vfx import evaluate as ev

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("adapters", nargs="*", help="LABEL=ADAPTER: adapters trained with skip_mix or hold, to score beside")
    ap.add_argument("--reference", default=REFERENCE, help="the plain adapter the ideal mix and hold are applied to")
    ev.add_sweep_arguments(ap, "docs/benchmarks/vfx_skip_mix.md")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.time()
    rows = sweep([tuple(a.split("=", 1)) for a in args.adapters], args.per_effect, args.steps, args.reference)
    from studio.tasks.vfx.effects import EFFECT_NAMES

    command = ("python scripts/vfx_skip_mix.py " + " ".join(f'"{a}"' for a in args.adapters)
               + f" --reference {args.reference} --out {args.out}")
    text = render(rows, args.per_effect * len(EFFECT_NAMES), args.steps, time.time() - t0, command)
    print(text)
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
