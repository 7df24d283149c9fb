"""When is a clip's effect decided? Denoise the TRUE validation clips from part way and name the effect.

Each validation clip (seed 9001, the sampling studies' clips) is noised to the level of the last ``denoise`` share of
the 10 DDIM steps and denoised from there by the adapter alone (no guidance; SDEdit through
``VfxPipeline.generate(init=…, denoise=…)``), and the eval's classifier names the effect. ``denoise`` 1 is plain
generation from noise. If the clips it names right climb steeply between 1 and 0.9, the effect is decided in the
first, noisiest step(s): what the model does with pure noise and the prompt, not how it renders details.

Second part, who decides there, the prompt or the noisy clip: the same true clips denoised from part way under the
prompt of the next effect (the clip's verb swapped, its object, mask and times kept); how many come out named as the
prompt asks and how many as the clip they started from.

    python scripts/vfx_effect_decision.py --adapters vfx-mixed --out docs/benchmarks/vfx_effect_decision.md
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

DENOISE = (1.0, 0.9, 0.8, 0.7, 0.5, 0.3)  # 1 = from noise; 0.9 = from the true clip at t = 899 (10 trailing steps)
STEPS = 10


def redo(pipe, clips, requests, d: float, batch: int = 22) -> list[np.ndarray]:
    """The true ``clips`` denoised from part way (``denoise`` d) under ``requests``, the same seed for every level."""
    g = torch.Generator().manual_seed(0)
    videos: list[np.ndarray] = []
    for i in range(0, len(clips), batch):
        videos += list(pipe.generate(requests[i : i + batch], steps=STEPS, generator=g, denoise=d,
                                     init=np.stack([c.frames for c in clips[i : i + batch]])))
    return videos


def decision_curve(pipe, adapter: str, clips, classifier, denoise=DENOISE) -> list[dict]:
    """The eval's scores of the adapter's clips, denoised from each level (one row per ``denoise``)."""
    from studio.tasks.vfx import evaluate as ev
    from studio.tasks.vfx.pipeline import Request

    reqs = [Request(c.reference, c.prompt, c.mask[0], c.start_s, c.end_s, c.effect) for c in clips]
    rows = []
    for d in denoise:
        r = ev.score(clips, redo(pipe, clips, reqs, d), classifier)
        rows.append({"adapter": adapter, "denoise": d, **{k: r[k] for k in ("effect_accuracy", "t_iou",
                                                                             "mask_precision", "per_effect_accuracy")}})
        print({k: v for k, v in rows[-1].items() if k != "per_effect_accuracy"}, flush=True)
    return rows


SWAP_DENOISE = (0.9, 0.8, 0.7)


def swapped(c) -> tuple[str, str]:
    """The clip's request with the next effect's verb in its prompt: (prompt, effect)."""
    from studio.tasks.vfx.effects import EFFECT_NAMES, EFFECTS

    other = EFFECT_NAMES[(EFFECT_NAMES.index(c.effect) + 1) % len(EFFECT_NAMES)]
    return c.prompt.replace(EFFECTS[c.effect].verb, EFFECTS[other].verb), other


def swap_curve(pipe, adapter: str, clips, classifier, denoise=SWAP_DENOISE) -> list[dict]:
    """Share of the true clips, denoised from part way under another effect's prompt, named as the prompt asks and
    as the clip they started from."""
    from studio.tasks.vfx.classifier import predict
    from studio.tasks.vfx.effects import EFFECT_NAMES
    from studio.tasks.vfx.pipeline import Request

    swaps = [swapped(c) for c in clips]
    reqs = [Request(c.reference, prompt, c.mask[0], c.start_s, c.end_s, effect) for c, (prompt, effect) in zip(clips, swaps)]
    asked = np.array([EFFECT_NAMES.index(effect) for _, effect in swaps])
    started = np.array([EFFECT_NAMES.index(c.effect) for c in clips])
    masks = torch.from_numpy(np.stack([c.mask[0] for c in clips]))
    rows = []
    for d in denoise:
        named = predict(classifier, torch.from_numpy(np.stack(redo(pipe, clips, reqs, d))), masks)
        rows.append({"adapter": adapter, "denoise": d, "prompt": float((named == asked).mean()),
                     "clip": float((named == started).mean())})
        print(rows[-1], flush=True)
    return rows


def first_timestep(d: float) -> int:
    """The DDIM timestep denoising starts from at ``denoise`` d (as ``studio.diffusion.sample`` skips)."""
    from studio.diffusion import scheduler_from_spec, skipped_steps
    from studio.tasks.vfx.objective import NOISE

    sch = scheduler_from_spec("ddim", NOISE)
    sch.set_timesteps(STEPS)
    return int(sch.timesteps[skipped_steps(STEPS, d)])


def signal(t: int) -> float:
    from studio.tasks.vfx.objective import alphas_cumprod

    return float(alphas_cumprod()[t].sqrt())


def render(rows: list[dict], swaps: list[dict], n: int, seconds: float, command: str) -> str:
    levels = sorted({r["denoise"] for r in rows}, reverse=True)
    head = " | ".join("from noise" if d == 1.0 else f"from the true clip at t = {first_timestep(d)}" for d in levels)
    lines = ["# When the effect is decided (`scripts/vfx_effect_decision.py`)", "",
             f"{n} validation clips (seed 9001, the sampling studies' clips), each noised to the level of a DDIM step "
             f"({STEPS} trailing steps: 999, 899, …, 99) and denoised from there by the adapter alone (no guidance); "
             "the eval's detector and classifier score them. *From noise* is plain generation. The true clip's share "
             "of the noised input, √ᾱ: " + ", ".join(f"{signal(first_timestep(d)):.2f} at t = {first_timestep(d)}"
                                                      for d in levels if d < 1.0)
             + f". {seconds:.0f} s on this machine.", ""]
    for key, title in (("effect_accuracy", "effect accuracy"), ("t_iou", "T-IoU"), ("mask_precision", "mask precision")):
        lines += [f"## {title}", "", f"| adapter | {head} |", "|---" * (len(levels) + 1) + "|"]
        for a in dict.fromkeys(r["adapter"] for r in rows):
            vals = {r["denoise"]: r[key] for r in rows if r["adapter"] == a}
            lines.append(f"| {a} | " + " | ".join(f"{vals[d]:.3f}" for d in levels) + " |")
        lines.append("")
    first = rows[0]["adapter"]
    per = {r["denoise"]: r["per_effect_accuracy"] for r in rows if r["adapter"] == first}
    effects = list(per[levels[0]])
    lines += [f"## Per effect ({first}; effect accuracy)", "", "| effect | " + " | ".join(
        "noise" if d == 1.0 else f"t = {first_timestep(d)}" for d in levels) + " |", "|---" * (len(levels) + 1) + "|"]
    lines += [f"| {e} | " + " | ".join(f"{per[d][e]:.2f}" for d in levels) + " |" for e in effects]
    if swaps:
        sl = sorted({r["denoise"] for r in swaps}, reverse=True)
        lines += ["", "## Who decides: the prompt or the noisy clip", "",
                  "The same true clips denoised from part way under the *next* effect's prompt (the verb swapped; "
                  "object, mask and times kept): the share named as the prompt asks / as the clip they started from.",
                  "", "| adapter | " + " | ".join(f"from t = {first_timestep(d)}: prompt / clip" for d in sl) + " |",
                  "|---" * (len(sl) + 1) + "|"]
        for a in dict.fromkeys(r["adapter"] for r in swaps):
            vals = {r["denoise"]: r for r in swaps if r["adapter"] == a}
            lines.append(f"| {a} | " + " | ".join(f"{vals[d]['prompt']:.3f} / {vals[d]['clip']:.3f}" for d in sl) + " |")
    lines += ["", f"Reproduce: `{command}`", ""]
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> Path:
    """Effect accuracy against the timestep the true clip is denoised from (999 = from noise), one line per adapter."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for a in dict.fromkeys(r["adapter"] for r in rows):
        pts = sorted((999 if r["denoise"] == 1.0 else first_timestep(r["denoise"]), r["effect_accuracy"])
                     for r in rows if r["adapter"] == a)
        ax.plot(*zip(*pts), marker="o", label=a)
    ax.set_xlabel("denoised from timestep (999 = pure noise; lower = more of the true clip kept)")
    ax.set_ylabel("effect accuracy")
    ax.invert_xaxis()
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main() -> None:
    from studio.paths import model_path
    from studio.tasks.vfx import evaluate as ev
    from studio.tasks.vfx.classifier import load_classifier
    from studio.tasks.vfx.pipeline import VfxPipeline

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--adapters", nargs="+", default=["vfx-mixed"], help="adapter names under adapters/ or folders")
    ap.add_argument("--out", default="docs/benchmarks/vfx_effect_decision.md")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--per-effect", type=int, default=8, help="validation clips per effect")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.time()
    clips = ev.held_out(args.per_effect, seed=ev.VALIDATION_SEED)
    classifier = load_classifier(model_path("vfx-base") / "effect_classifier.safetensors")
    rows, swaps = [], []
    for a in args.adapters:  # one model load per adapter, both parts
        pipe = VfxPipeline.load("vfx-base", ((a, 1.0),))
        rows += decision_curve(pipe, a, clips, classifier)
        swaps += swap_curve(pipe, a, clips, classifier)
    command = (f"python scripts/vfx_effect_decision.py --adapters {' '.join(args.adapters)} "
               f"--per-effect {args.per_effect} --out {args.out}")
    figure = plot(rows, Path(args.out).with_suffix(".png"))
    text = render(rows, swaps, len(clips), time.time() - t0, command).replace(
        "\n## effect accuracy\n", f"\n![effect accuracy by starting timestep]({figure.name})\n\n## effect accuracy\n", 1)
    print(text)
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
