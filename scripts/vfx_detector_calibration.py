"""Calibrate the VFX motion detector's per-pixel noise floor — on the truth, never on generated clips.

A diffusion model leaves a little noise in every pixel it paints. Summed over the effect region
(interval detection) or over the whole frame (mask precision), 1–3 grey levels per pixel look like
motion: before this calibration the detector read the shipped model's reconstruction of the *true*
clip, from an input that was nearly clean, as an effect that never stops. So the floor is chosen
on two sets whose right answer is known:

* real procedural clips: every one must still be recovered exactly (interval and mask);
* the model's reconstruction of the true clip (``vfx_adapter_study.denoised_truth``: ẑ0 predicted
  from the truth noised to t, the noise level of the last sampling steps) must read as the truth.

Rule: the smallest floor (grey levels) at which every real clip is recovered exactly and the
reconstructions from t = 20 and t = 50 meet the issue's goals for generated clips (T-IoU ≥ 0.9,
mask precision ≥ 0.9): the truth, as the model reproduces it, must pass. The table also shows
t = 100. The chosen floor is compared with the detector's default
(``metrics.DetectorSpec.pixel_floor``), which ``studio eval vfx`` uses.

    python scripts/vfx_detector_calibration.py --out docs/benchmarks/vfx_detector.md
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

FLOORS = (0, 1, 2, 3, 4, 5, 6, 8)  # grey levels (0–255)
NOISE_LEVELS = (20, 50, 100)
RULE_T = (20, 50)
RULE_MIN = 0.9  # the goals for generated clips (``evaluate.GOALS``: T-IoU and mask precision ≥ 0.9)


def score_set(clips, videos, floor: float) -> dict[str, float]:
    from studio.tasks.vfx.metrics import DetectorSpec, score_clip

    spec = DetectorSpec(pixel_floor=floor / 255)
    s = [score_clip(np.asarray(v), c.mask, c.others, c.start, c.end, spec) for c, v in zip(clips, videos)]
    hit = [(x.detected, c) for x, c in zip(s, clips) if x.detected is not None]
    return {"t_iou": float(np.mean([x.t_iou for x in s])),
            "exact": float(np.mean([x.detected == (c.start, c.end) for x, c in zip(s, clips)])),
            "end_bias": float(np.mean([d[1] - c.end for d, c in hit])) if hit else float("nan"),
            "mask_precision": float(np.mean([x.mask_precision for x in s]))}


def calibrate(base: str, adapter: str, per_effect_real: int, per_effect_rec: int) -> tuple[list[dict], int | None]:
    from vfx_adapter_study import denoised_truth

    from studio.tasks.vfx import evaluate as ev
    from studio.tasks.vfx.pipeline import VfxPipeline

    real = ev.held_out(per_effect_real)
    pipe = VfxPipeline.load(base, ((adapter, 1.0),))
    recs = {t: denoised_truth(pipe, t, per_effect_rec) for t in NOISE_LEVELS}
    rows = []
    for f in FLOORS:
        row = {"floor": f, "real": score_set(real, [c.frames for c in real], f)}
        row.update({t: score_set(clips, videos, f) for t, (clips, videos) in recs.items()})
        rows.append(row)
    ok = [r["floor"] for r in rows if r["real"]["exact"] == 1.0
          and all(r[t]["t_iou"] >= RULE_MIN and r[t]["mask_precision"] >= RULE_MIN for t in RULE_T)]
    return rows, (min(ok) if ok else None)


def render(rows: list[dict], chosen: int | None, base: str, adapter: str, n_real: int, n_rec: int,
           seconds: float) -> str:
    from studio.tasks.vfx.metrics import DetectorSpec

    default = round(DetectorSpec.pixel_floor * 255, 3)
    first = rows[0][NOISE_LEVELS[0]]  # no floor, the least noisy reconstruction
    head = "| pixel floor (grey levels) | real clips: exact / T-IoU / mask prec. | " + " | ".join(
        f"reconstruction t={t}: T-IoU / end bias / mask prec." for t in NOISE_LEVELS) + " |"
    lines = ["# VFX motion detector: the per-pixel noise floor (`scripts/vfx_detector_calibration.py`)", "",
             f"Real clips: {n_real} procedural clips of the eval's held-out seed. Reconstructions: the eval's {n_rec} "
             f"clips, each *true* clip noised to t (frame-correlated noise, as in sampling) and predicted back in one "
             f"step by `{base}` + `{adapter}` — the right answer is the annotated interval and a mask "
             "precision of 1. End bias: detected minus true end frame (+ = the effect reads as going on).", "",
             head, "|" + "---|" * (2 + len(NOISE_LEVELS))]
    for r in rows:
        cells = [f"{r['real']['exact']:.3f} / {r['real']['t_iou']:.3f} / {r['real']['mask_precision']:.3f}"]
        cells += [f"{r[t]['t_iou']:.3f} / {r[t]['end_bias']:+.2f} / {r[t]['mask_precision']:.3f}" for t in NOISE_LEVELS]
        lines.append(f"| {r['floor']} | " + " | ".join(cells) + " |")
    verdict = (f"**{chosen} grey levels**" if chosen is not None else "**none of the floors tried**")
    lines += ["", f"Rule: the smallest floor with every real clip exact and T-IoU ≥ {RULE_MIN} and mask precision ≥ "
              f"{RULE_MIN} on the reconstructions from t = {' and '.join(map(str, RULE_T))} → {verdict}. "
              f"The detector's default (`DetectorSpec.pixel_floor`): {default:g} grey levels"
              + (" — the same." if chosen == default else " — **differs**; update it or the rule."), "",
              f"Without a floor (first row) the model's reconstruction of the truth from a nearly clean input (t = "
              f"{NOISE_LEVELS[0]}) reads T-IoU {first['t_iou']:.2f} with the end {first['end_bias']:+.2f} frames late, and "
              f"{1 - first['mask_precision']:.0%} of its motion outside the mask: the metric measured the sampler's "
              "per-pixel noise, not the effect. The floor leaves real motion alone (the real "
              "clips' column) and the timing diagnostics of `studio eval vfx` (motion after the end) stay on raw "
              "frame differences.", "",
              f"{seconds:.0f} s on this machine. Reproduce: `python scripts/vfx_detector_calibration.py --base {base} "
              f"--adapter {adapter} --out docs/benchmarks/vfx_detector.md` (the floor was first chosen on "
              "`vfx-base-small` + `vfx-mixed-small`, the pair shipped then: the same rule gave the same floor).", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default="vfx-base", help="the base (name under models/ or a folder)")
    ap.add_argument("--adapter", default="vfx-mixed", help="the adapter whose reconstructions calibrate the floor")
    ap.add_argument("--out", default="docs/benchmarks/vfx_detector.md")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--real-per-effect", type=int, default=30, help="real clips per effect (30: 330 clips)")
    ap.add_argument("--per-effect", type=int, default=4, help="reconstructed clips per effect (4: the eval's 44)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.time()
    rows, chosen = calibrate(args.base, args.adapter, args.real_per_effect, args.per_effect)
    from studio.tasks.vfx.effects import EFFECT_NAMES

    n = len(EFFECT_NAMES)
    text = render(rows, chosen, args.base, args.adapter, args.real_per_effect * n, args.per_effect * n,
                  time.time() - t0)
    print(text)
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
