"""Draw noise selection at work: for a few validation clips, each starting noise's predicted clip at the moment of the
choice, the effect guide's p(requested effect) for it, the candidate kept, and the finished clip beside the truth.

    python scripts/vfx_noise_selection_figure.py --out docs/benchmarks/vfx_noise_selection.png
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

EFFECTS = ("explode", "crumble", "melt", "squish", "tada")  # the ones the sampler misnamed most before selection


def run(effects: tuple[str, ...], seed: int) -> dict:
    """Generate one validation clip per effect as the CLI samples, recording the candidates at the choice."""
    from studio.diffusion import NoiseSelection
    from studio.tasks.vfx import evaluate as ev
    from studio.tasks.vfx.objective import decode, to_uint8
    from studio.tasks.vfx.pipeline import Request, VfxPipeline

    clips = ev.held_out(1, effects, seed=ev.VALIDATION_SEED)
    main = ev.MAIN
    pipe = VfxPipeline.load(main.base, tuple((a, 1.0) for a in main.adapters), guide=main.guide_adapters)
    seen: dict = {}
    pick = NoiseSelection.pick

    def recording_pick(self, x_in, t, cond, batch):  # keeps the scores the choice is made on
        def scored(x, tt, c):
            logp = self.score_fn(x, tt, c)
            seen["scores"] = logp.reshape(self.candidates, batch).exp()
            return logp

        seen["t"] = int(t)
        return pick(replace(self, score_fn=scored), x_in, t, cond, batch)

    def keep_previews(i, n, x0):
        seen.setdefault("previews", []).append(x0.float())

    NoiseSelection.pick = recording_pick
    try:
        reqs = [Request(c.reference, c.prompt, c.mask[0], c.start_s, c.end_s, c.effect) for c in clips]
        out = pipe.generate(reqs, steps=10, generator=torch.Generator().manual_seed(seed), callback=keep_previews,
                            **main.sampling())
    finally:
        NoiseSelection.pick = pick
    # the last preview with every candidate in it: the prediction the choice was made from
    before = [p for p in seen["previews"] if p.shape[0] > len(clips)][-1]
    ref = torch.stack([torch.from_numpy(c.reference) for c in clips]).permute(0, 3, 1, 2).float() / 127.5 - 1
    refs = ref.repeat(main.noise_candidates, 1, 1, 1)
    frames = to_uint8(decode(before, refs)).numpy()  # (N·B, T, H, W, 3), candidate-major
    candidates = frames.reshape(main.noise_candidates, len(clips), *frames.shape[1:])
    return {"clips": clips, "candidates": candidates, "scores": seen["scores"].numpy(), "t": seen["t"],
            "out": out, "sampling": ev.guidance_words(main)}


def frame_at(clip_frames: np.ndarray, c) -> np.ndarray:
    """The frame in the middle of the requested interval."""
    return clip_frames[min(len(clip_frames) - 1, (round(c.start_s * 8) + round(c.end_s * 8)) // 2)]


def draw(r: dict, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    clips, n = r["clips"], r["candidates"].shape[0]
    fig, axes = plt.subplots(len(clips), n + 2, figsize=(1.6 * (n + 2), 1.75 * len(clips)), dpi=110)
    chosen = r["scores"].argmax(0)
    for i, c in enumerate(clips):
        for k in range(n):
            ax = axes[i, k]
            ax.imshow(frame_at(r["candidates"][k, i], c))
            ax.set_title(f"p = {r['scores'][k, i]:.2f}", fontsize=8, color="green" if k == chosen[i] else "black")
            if k == chosen[i]:
                for side in ax.spines.values():
                    side.set_edgecolor("green")
                    side.set_linewidth(3)
        axes[i, n].imshow(frame_at(r["out"][i], c))
        axes[i, n].set_title("finished", fontsize=8)
        axes[i, n + 1].imshow(frame_at(c.frames, c))
        axes[i, n + 1].set_title("truth", fontsize=8)
        axes[i, 0].set_ylabel(c.effect, fontsize=9)
        for ax in axes[i]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(f"Each starting noise's predicted clip at t = {r['t']} (middle of the requested interval) and the "
                 "effect guide's p(requested effect); green: kept", fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="docs/benchmarks/vfx_noise_selection.png")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    r = run(EFFECTS, args.seed)
    print(draw(r, Path(args.out)), r["sampling"])


if __name__ == "__main__":
    main()
