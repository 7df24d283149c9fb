"""`studio eval diffscaler [--quick] [--json]` → docs/benchmarks/diffscaler.md.

1. Load the frozen base and the target datasets (train + held-out splits).
2. Train a small classifier (heads: dataset, class) on the targets' real training images; its
   features are the space of the Fréchet distances.
3. For each dataset and method (affiner, full fine-tune, LoRA at the affiner's parameter count,
   label embeddings only), at equal steps: fine-tune a fresh copy, sample, FD to held-out images.
4. Mixed-dataset serving: all affiners in one model; one batch mixing datasets vs a batch of one
   dataset (throughput), and vs each dataset rendered alone (max abs difference of images).
5. Write the table (goals marked met or not) and a grid image; return the ``--json`` keys.
"""

from __future__ import annotations

import copy
import shutil
import statistics
import time
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import torch

from studio.tasks.diffscaler import data as ddata
from studio.tasks.diffscaler.model import DiffscalerNet, load_base
from studio.tasks.diffscaler.pipeline import balanced_labels, denoise, initial_noise, to_uint8
from studio.tasks.diffscaler.train import FinetuneSpec, MethodSpec, attach, fit, lora_rank_matching

METHODS = ("affiner", "full", "lora", "embed")
LR = {"affiner": 2e-3, "full": 3e-4, "lora": 2e-3, "embed": 1e-2}


@dataclass(frozen=True)
class EvalSpec:
    base: str = "image-dit"
    datasets: tuple[str, ...] = tuple(ddata.PROCEDURAL)
    steps: int = 400
    batch_size: int = 32
    train_images: int = 2048
    heldout_images: int = 256
    generated: int = 96
    sample_steps: int = 20
    guidance: float = 2.0
    classifier_steps: int = 500
    rank: int = 1
    serve_batch: int = 48
    serve_repeats: int = 5
    save_adapters: bool = True
    threads: int = 1  # 1 thread is several times faster than 2 on this shared 2-core machine


NOTES = [
    "## Notes",
    "",
    "- The frozen base is `models/image-dit`, the image task's text-conditioned DiT (see its MODEL_CARD.md). "
    "A target dataset's classes enter through the base's pooled-text input: a table per dataset whose rows "
    "all start at the null caption's pooled vector (the base's unconditional input), with the null caption's "
    "tokens as the cross-attention context. No caption text is used for the targets.",
    "- An affiner's per-channel scale and shift cost 2·out per layer, a larger share the narrower the model; "
    "rank 1 on attention (self and cross) + MLP + the label table is the shipped setting.",
    "- Learning rates per method (fixed, not tuned per dataset): affiner 2e-3, LoRA 2e-3, full 3e-4, "
    "label embeddings 1e-2. One seed per cell; the FD has sampling noise of a few percent at this sample count.",
    "- Every run is the shared `studio.train.Trainer` (constant lr after 20 warm-up steps, grad-norm clip 1); "
    "metrics and loss curves under `runs/diffscaler/eval/<dataset>-<method>/`.",
    "- Serving throughput: the mixed batch runs each layer's bottlenecks of all datasets as one masked "
    "GEMM and gathers per-sample scale/shift; the one-dataset batch uses the plain path.",
    "",
]

QUICK = EvalSpec(steps=30, batch_size=16, train_images=256, heldout_images=96, generated=48, sample_steps=10,
                 classifier_steps=150, serve_batch=24, serve_repeats=3, save_adapters=False)


def run(quick: bool = False, spec: EvalSpec | None = None, out_md: Path | None = None) -> dict[str, Any]:
    spec = spec or (QUICK if quick else EvalSpec())
    from studio.paths import adapters_dir, home

    # a quick run never overwrites the committed full results
    out_md = out_md or home() / "docs" / "benchmarks" / ("diffscaler_quick.md" if quick else "diffscaler.md")
    torch.set_num_threads(spec.threads)
    torch.manual_seed(0)
    # 1. base + data
    base_net = load_base(spec.base)
    base_params = sum(p.numel() for p in base_net.base.parameters())
    train = {d: ddata.load(d, spec.train_images, "train") for d in spec.datasets}
    held = {d: ddata.load(d, spec.heldout_images, "heldout") for d in spec.datasets}
    # 2. feature space
    classifier = _classifier(train, spec)
    feats_real = {d: _features(classifier, held[d].images) for d in spec.datasets}
    # 3. method comparison
    rows, trained = [], {}
    for d in spec.datasets:
        k = len(train[d].classes)
        base_imgs = _generate_base_null(base_net, spec, d)
        rows.append(_row(d, "base (no fine-tune)", 0, base_params, 0.0, _fd(classifier, base_imgs, feats_real[d])))
        affiner_params = None
        for kind in METHODS:
            rank = spec.rank if kind != "lora" else lora_rank_matching(base_net, affiner_params, MethodSpec().targets)
            method = MethodSpec(kind=kind, rank=rank, lr=LR[kind])
            net = _fresh(base_net)
            attach(net, d, method, k)
            stats = fit(net, d, FinetuneSpec(d, method, steps=spec.steps, batch_size=spec.batch_size,
                                             train_images=spec.train_images), train[d],
                        output_dir=home() / "runs" / "diffscaler" / ("eval_quick" if quick else "eval") / f"{d}-{kind}")
            if kind == "affiner":
                affiner_params = stats["trainable_parameters"]
                trained[d] = (net, stats)
            imgs = _sample(net, d, k, spec)
            fd = _fd(classifier, imgs, feats_real[d])
            label = f"{kind} (rank {rank})" if kind in ("affiner", "lora") else kind
            rows.append(_row(d, label, stats["trainable_parameters"], base_params, stats["seconds"], fd))
    # 4. mixed-batch serving
    serving = _serving(base_net, trained, {d: len(train[d].classes) for d in spec.datasets}, spec)
    # 5. report
    results = _summary(rows, spec, serving)
    if spec.save_adapters:
        _save_adapters(trained, base_net, spec, rows, results, adapters_dir())
    grid_path = out_md.with_name(out_md.stem + "_grid.png")
    _write_grid(serving["grid"], grid_path)
    cols = serving["batch"] // len(spec.datasets)
    _write_grid(ddata.grid(np.concatenate([held[d].images[:cols] for d in spec.datasets]), cols),
                out_md.with_name(out_md.stem + "_real.png"))
    _write_markdown(out_md, spec, rows, results, serving, grid_path.name, quick)
    results["report"] = str(out_md)
    return results


# ------------------------------------------------------------------------------------------ parts


def _classifier(train: dict[str, ddata.ImageSet], spec: EvalSpec):
    from studio.evaluation import ClassifierSpec, train_classifier

    images = np.concatenate([s.images for s in train.values()])
    ds = np.concatenate([np.full(len(s), i) for i, s in enumerate(train.values())])
    cls = np.concatenate([s.labels for s in train.values()])
    heads = {"dataset": len(train), "class": max(len(s.classes) for s in train.values())}
    # 32-d features: the Fréchet covariance is estimated from ~100 samples, so keep it well-conditioned
    return train_classifier(images, {"dataset": ds, "class": cls}, ClassifierSpec(heads, feature_dim=32),
                            steps=spec.classifier_steps, batch_size=64)


def _features(classifier, images: np.ndarray) -> np.ndarray:
    from studio.evaluation import extract_features

    return extract_features(classifier, images)


def _fd(classifier, images: np.ndarray, real_feats: np.ndarray) -> float:
    from studio.evaluation import frechet_distance

    return float(frechet_distance(_features(classifier, images), real_feats))


def _fresh(base_net: DiffscalerNet) -> DiffscalerNet:
    """A deep copy of the frozen base (no adapters), so every method starts from the same weights."""
    return DiffscalerNet(copy.deepcopy(base_net.base), base_net.info, copy.deepcopy(base_net.null_text))


def _sample(net: DiffscalerNet, d: str, k: int, spec: EvalSpec) -> np.ndarray:
    n = spec.generated
    x_T = initial_noise(n, net.in_channels, net.sample_size, seed=1234)
    with torch.no_grad():
        return to_uint8(denoise(net, [d] * n, balanced_labels(n, k), x_T, spec.sample_steps, spec.guidance))


def _generate_base_null(base_net: DiffscalerNet, spec: EvalSpec, d: str) -> np.ndarray:
    """The untouched base, unconditional: the starting point every method moves from."""
    net = _fresh(base_net)
    attach(net, d, MethodSpec(kind="embed"), 1)  # null-initialised table = the base's null class
    return _sample(net, d, 1, replace(spec, guidance=1.0))


def _row(dataset: str, method: str, params: int, base_params: int, seconds: float, fd: float) -> dict:
    return {"dataset": dataset, "method": method, "params": params, "share": params / base_params,
            "seconds": seconds, "fd": fd}


def _serving(base_net: DiffscalerNet, trained: dict, classes: dict[str, int], spec: EvalSpec) -> dict:
    """All datasets' affiners in one model: mixed batch vs one-dataset batch, and vs alone."""
    net = _fresh(base_net)
    for d, (src, _) in trained.items():
        net.add(d, copy.deepcopy(src.tuner.peft_config[d]))
        with torch.no_grad():
            own = dict(net.tuner.trainable_parameters(d))
            for key, p in src.tuner.trainable_parameters(d).items():
                own[key].copy_(p)
    names = list(trained)
    n = spec.serve_batch
    mixed = [names[i % len(names)] for i in range(n)]
    labels = [(i // len(names)) % classes[m] for i, m in enumerate(mixed)]
    x_T = initial_noise(n, net.in_channels, net.sample_size, seed=99)
    with torch.no_grad():
        out_mixed = denoise(net, mixed, labels, x_T, spec.sample_steps, spec.guidance)
        diff = 0.0
        for d in names:
            idx = [i for i, m in enumerate(mixed) if m == d]
            net.tuner.set_adapter(d)  # the plain single-dataset path (no routing)
            alone = denoise(net, [d] * len(idx), [labels[i] for i in idx], x_T[idx], spec.sample_steps, spec.guidance)
            diff = max(diff, float((out_mixed[idx] - alone).abs().max()))
        # throughput: the same batch size, mixed vs one dataset; interleaved repeats, medians
        single = [names[0]] * n
        t_mixed, t_single = [], []
        for _ in range(spec.serve_repeats):
            for batch, times in ((mixed, t_mixed), (single, t_single)):
                start = time.perf_counter()
                denoise(net, batch, labels if batch is mixed else [0] * n, x_T, spec.sample_steps, spec.guidance)
                times.append(time.perf_counter() - start)
    grid_order = sorted(range(n), key=lambda i: (names.index(mixed[i]), i))
    return {"max_abs_diff": diff, "seconds_mixed": statistics.median(t_mixed),
            "seconds_single": statistics.median(t_single),
            "throughput_ratio": statistics.median(t_single) / statistics.median(t_mixed),
            "grid": ddata.grid(to_uint8(out_mixed)[grid_order], cols=n // len(names)), "batch": n}


def _summary(rows: list[dict], spec: EvalSpec, serving: dict) -> dict[str, Any]:
    by = {(r["dataset"], r["method"].split(" ")[0]): r for r in rows}
    ratios = {d: by[(d, "affiner")]["fd"] / max(by[(d, "full")]["fd"], 1e-9) for d in spec.datasets}
    vs_lora = {d: by[(d, "affiner")]["fd"] <= by[(d, "lora")]["fd"] for d in spec.datasets}
    share = max(by[(d, "affiner")]["share"] for d in spec.datasets)
    share_vs_full = max(by[(d, "affiner")]["params"] / by[(d, "full")]["params"] for d in spec.datasets)
    return {
        "fd_ratio_vs_full_ft": max(ratios.values()),
        "fd_ratio_per_dataset": ratios,
        "param_share": share,
        "param_share_vs_full_ft": share_vs_full,
        "affiner_beats_lora": vs_lora,
        "mixed_batch_throughput_ratio": serving["throughput_ratio"],
        "mixed_batch_max_abs_diff": serving["max_abs_diff"],
        "rows": [{k: v for k, v in r.items()} for r in rows],
        "steps": spec.steps,
    }


def _save_adapters(trained: dict, base_net: DiffscalerNet, spec: EvalSpec, rows: list[dict], results: dict,
                   root: Path) -> None:
    from studio.tasks.diffscaler.adapters import card, record, save

    for d, (net, stats) in trained.items():
        measured = {r["method"]: round(r["fd"], 3) for r in rows if r["dataset"] == d}
        rec = record(net, d, stats, extra={"fd_heldout": measured, "eval_steps": spec.steps,
                                            "fd_ratio_vs_full_ft": round(results["fd_ratio_per_dataset"][d], 3)})
        folder = save(net, d, root / f"diffscaler-{d}", rec, card(d, rec, stats, measured))
        if stats.get("loss_curve") and Path(stats["loss_curve"]).is_file():
            shutil.copyfile(stats["loss_curve"], Path(folder) / "loss_curve.png")


def _write_grid(grid: np.ndarray, path: Path) -> None:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    big = cv2.resize(grid, None, fx=3, fy=3, interpolation=cv2.INTER_NEAREST)
    cv2.imwrite(str(path), cv2.cvtColor(big, cv2.COLOR_RGB2BGR))


def _write_markdown(path: Path, spec: EvalSpec, rows: list[dict], res: dict, serving: dict, grid: str,
                    quick: bool) -> None:
    met = lambda ok: "**met**" if ok else "**not met**"  # noqa: E731
    lines = [
        "# Diffscaler benchmark",
        "",
        f"{date.today().isoformat()} · {'quick' if quick else 'full'} run · `studio eval diffscaler"
        f"{' --quick' if quick else ''}` · 2-core CPU, 1 thread (other jobs may share it) · fp32",
        "",
        f"Frozen base: `{spec.base}`. Every method fine-tunes a fresh copy for **{spec.steps} steps** "
        f"(batch {spec.batch_size}, {spec.train_images} training images per dataset). FD = Fréchet distance "
        f"between {spec.generated} samples ({spec.sample_steps} DDIM steps, guidance {spec.guidance}) and "
        f"{spec.heldout_images} held-out real images, in the feature space of a small classifier "
        "(`studio.evaluation`, heads: dataset + class) trained on the targets' training images. "
        "Lower is better. LoRA's rank is chosen to match the affiner's parameter count.",
        "",
        "| dataset | method | trainable params | share of base | train time (s) | FD ↓ |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['dataset']} | {r['method']} | {r['params']:,} | {100 * r['share']:.2f}% | "
                     f"{r['seconds']:.1f} | {r['fd']:.2f} |")
    ratio_ok = res["fd_ratio_vs_full_ft"] <= 1.10
    share_ok = res["param_share_vs_full_ft"] <= 0.02
    lora_ok = all(res["affiner_beats_lora"].values())
    thr_ok = res["mixed_batch_throughput_ratio"] >= 0.9
    lora_text = ", ".join(f"{d}: {'yes' if v else 'no'}" for d, v in res["affiner_beats_lora"].items())
    lines += [
        "",
        "## Goals",
        "",
        "| goal | measured | status |",
        "|---|---|---|",
        f"| affiner FD within 10% of full fine-tuning (worst dataset) | "
        f"{res['fd_ratio_vs_full_ft']:.3f}× ({', '.join(f'{d} {v:.2f}×' for d, v in res['fd_ratio_per_dataset'].items())}) | {met(ratio_ok)} |",
        f"| ≤ 2% of full fine-tuning's trainable parameters | {100 * res['param_share_vs_full_ft']:.2f}% | {met(share_ok)} |",
        f"| better than LoRA at equal parameter count | "
        f"{lora_text} | {met(lora_ok)} |",
        f"| mixed batch ≥ 0.9× a one-dataset batch's throughput | {res['mixed_batch_throughput_ratio']:.3f}× "
        f"(batch {serving['batch']}: mixed {serving['seconds_mixed']:.2f} s, one dataset "
        f"{serving['seconds_single']:.2f} s, medians of {spec.serve_repeats}) | {met(thr_ok)} |",
        f"| mixed batch gives the same images as each dataset alone | max abs diff "
        f"{res['mixed_batch_max_abs_diff']:.2e} (images in [-1, 1]) | "
        f"{met(res['mixed_batch_max_abs_diff'] < 1e-3)} |",
        "",
        f"![mixed-dataset batch]({grid})",
        "",
        f"One batch of {serving['batch']} samples mixing all datasets (one row per dataset, sorted for display), "
        "and held-out real images of the same datasets:",
        "",
        f"![real held-out images]({grid.replace('_grid.png', '_real.png')})",
        "",
    ]
    lines += NOTES
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
