"""Core benchmark: ``studio bench core [--quick] [--json]`` → docs/benchmarks/core.md (+ a PNG plot).

1. The core DiT vs diffusers ``DiTTransformer2DModel`` at the same config and the same weights
   (imported through the key map), one training step (forward + backward), fp32 and bf16 autocast.
2. ``linear`` (LiT) vs ``sdpa`` attention modules from 256 to 16,384 tokens: forward time and peak
   allocator memory, with log-log scaling exponents and a plot.
3. bf16 MFU: achieved TFLOP/s of a DiT forward vs a plain bf16 matmul of the same FLOPs.

Peers run side by side in one process. The machine is shared, so every comparison is a set of
back-to-back pairs in alternating order and the figure is the median of the per-pair ratios (a
pair sees the same load); absolute times are medians too.

Memory method: ``torch.profiler`` with ``profile_memory=True`` records every CPU-allocator
allocation and free; the peak is the maximum of their running sum during one forward (inputs made
before profiling are not counted, the output is).
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import torch

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "benchmarks" / "core.md"
PLOT = ROOT / "docs" / "benchmarks" / "core_attention_scaling.png"

FULL = dict(
    dit=dict(heads=6, head_dim=64, depth=6, sample=32, batch=2), dit_pairs=9,
    grids=[(16, 16), (32, 32), (64, 64), (64, 128), (128, 128)], attn_reps=3,
    mfu=dict(heads=6, head_dim=64, depth=6, sample=32, batch=4), mfu_reps=5,
)
QUICK = dict(
    dit=dict(heads=4, head_dim=32, depth=2, sample=16, batch=2), dit_pairs=3,
    grids=[(16, 16), (32, 32), (64, 64), (128, 128)], attn_reps=1,
    mfu=dict(heads=4, head_dim=32, depth=2, sample=16, batch=2), mfu_reps=3,
)
ATTN_DIM, SDPA_HEADS, LINEAR_HEADS = 384, 6, 2  # DiT-S width; LiT's S/2 guideline of 2 heads


def run(quick: bool = False) -> dict[str, Any]:
    torch.manual_seed(0)
    cfg = QUICK if quick else FULL
    started = time.perf_counter()
    result: dict[str, Any] = {"quick": quick, "machine": machine()}
    result.update(bench_dit_vs_diffusers(cfg["dit"], cfg["dit_pairs"]))
    result.update(bench_attention_scaling(cfg["grids"], cfg["attn_reps"]))
    result.update(bench_mfu(cfg["mfu"], cfg["mfu_reps"]))
    result["seconds"] = round(time.perf_counter() - started, 1)
    write_report(result)
    return result


# ----------------------------------------------------------------------------- 1. DiT vs diffusers


def _diffusers_pair(c: dict) -> tuple[torch.nn.Module, torch.nn.Module]:
    from diffusers import DiTTransformer2DModel

    from studio.core.diffusers_import import dit_from_diffusers

    ref = DiTTransformer2DModel(
        num_attention_heads=c["heads"], attention_head_dim=c["head_dim"], in_channels=4, out_channels=8,
        num_layers=c["depth"], sample_size=c["sample"], patch_size=2, num_embeds_ada_norm=1000,
    )
    with torch.no_grad():  # one shared embedder, as in converted checkpoints, so the import is exact
        state = ref.state_dict()
        for key in [k for k in state if k.startswith("transformer_blocks.0.norm1.emb.")]:
            for i in range(1, c["depth"]):
                state[key.replace("blocks.0.", f"blocks.{i}.")].copy_(state[key])
    return dit_from_diffusers(ref).train(), ref.train()


def bench_dit_vs_diffusers(c: dict, pairs: int) -> dict[str, Any]:
    ours, ref = _diffusers_pair(c)
    x = torch.randn(c["batch"], 4, c["sample"], c["sample"])
    t = torch.randint(0, 1000, (c["batch"],))
    y = torch.randint(0, 1000, (c["batch"],))

    def step(model, theirs: bool, bf16: bool) -> Callable[[], None]:
        def go() -> None:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                out = model(x, timestep=t, class_labels=y).sample if theirs else model(x, t, y)
            out.float().square().mean().backward()
            model.zero_grad(set_to_none=True)

        return go

    rows = {}
    for precision, bf16 in (("bf16", True), ("fp32", False)):
        rows[precision] = paired(step(ours, False, bf16), step(ref, True, bf16), pairs)
    tokens = (c["sample"] // 2) ** 2
    return {
        "dit_config": {**c, "hidden": c["heads"] * c["head_dim"], "tokens": tokens, "patch": 2},
        "dit_time_ratio_vs_diffusers": rows["bf16"]["ratio"],
        "dit_time_ratio_vs_diffusers_fp32": rows["fp32"]["ratio"],
        "dit_rows": rows,
    }


def paired(ours: Callable[[], None], theirs: Callable[[], None], pairs: int, warmup: int = 1) -> dict[str, float]:
    """Median of per-pair time ratios (ours ÷ theirs), order alternating; plus median times in ms."""
    for _ in range(warmup):
        ours(), theirs()
    ratios, t_ours, t_theirs = [], [], []
    for i in range(pairs):
        order = ((ours, t_ours), (theirs, t_theirs)) if i % 2 == 0 else ((theirs, t_theirs), (ours, t_ours))
        for fn, sink in order:
            sink.append(_timed(fn))
        ratios.append(t_ours[-1] / t_theirs[-1])
    return {
        "ours_ms": round(1e3 * statistics.median(t_ours), 1),
        "theirs_ms": round(1e3 * statistics.median(t_theirs), 1),
        "ratio": round(statistics.median(ratios), 3),
        "pairs": pairs,
    }


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# ----------------------------------------------------------------------------- 2. linear vs sdpa


def bench_attention_scaling(grids: list[tuple[int, int]], reps: int) -> dict[str, Any]:
    from studio.core.attention import Attention, LinearSpec, SdpaSpec

    sdpa = Attention(ATTN_DIM, SDPA_HEADS, kernel=SdpaSpec()).eval()
    linear = Attention(ATTN_DIM, LINEAR_HEADS, kernel=LinearSpec()).eval()
    torch.nn.init.normal_(linear.kernel.dwc.weight, std=0.05)  # a trained-looking DWC, same cost
    rows = []
    for grid in grids:
        n = grid[0] * grid[1]
        x = torch.randn(1, n, ATTN_DIM)
        fwd_s = _no_grad(lambda: sdpa(x))
        fwd_l = _no_grad(lambda: linear(x, grid=grid))
        timing = paired(fwd_l, fwd_s, reps)
        rows.append({
            "tokens": n, "grid": list(grid),
            "sdpa_ms": timing["theirs_ms"], "linear_ms": timing["ours_ms"], "time_ratio": timing["ratio"],
            "sdpa_peak_mib": round(peak_memory_mib(fwd_s), 1), "linear_peak_mib": round(peak_memory_mib(fwd_l), 1),
        })
        rows[-1]["mem_ratio"] = round(rows[-1]["linear_peak_mib"] / rows[-1]["sdpa_peak_mib"], 3)
    largest = rows[-1]
    return {
        "attention_config": {"dim": ATTN_DIM, "sdpa_heads": SDPA_HEADS, "linear_heads": LINEAR_HEADS,
                             "batch": 1, "precision": "fp32", "mode": "inference forward"},
        "attention_rows": rows,
        "linear_time_ratio_vs_sdpa_16k": largest["time_ratio"] if largest["tokens"] == 16384 else None,
        "linear_mem_ratio_vs_sdpa_16k": largest["mem_ratio"] if largest["tokens"] == 16384 else None,
        "linear_time_exponent": _loglog_slope(rows, "linear_ms"),
        "sdpa_time_exponent": _loglog_slope(rows, "sdpa_ms"),
        "linear_mem_exponent": _loglog_slope(rows, "linear_peak_mib"),
        "sdpa_mem_exponent": _loglog_slope(rows, "sdpa_peak_mib"),
    }


def _no_grad(fn: Callable[[], Any]) -> Callable[[], Any]:
    def go():
        with torch.no_grad():
            return fn()

    return go


def peak_memory_mib(fn: Callable[[], Any]) -> float:
    """Peak of the running sum of CPU-allocator allocations minus frees while ``fn`` runs."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = sorted(
        (e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"
    )
    live = peak = 0
    for _, nbytes in events:
        live += nbytes
        peak = max(peak, live)
    return peak / 2**20


def _loglog_slope(rows: list[dict], key: str, last: int = 3) -> float:
    """Least-squares exponent of ``key`` ∝ tokens^k over the largest sizes (the asymptotic regime)."""
    pts = [(math.log(r["tokens"]), math.log(max(r[key], 1e-9))) for r in rows[-last:]]
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    return round(sum((a - mx) * (b - my) for a, b in pts) / sum((a - mx) ** 2 for a, _ in pts), 2)


# ----------------------------------------------------------------------------- 3. MFU


def bench_mfu(c: dict, reps: int) -> dict[str, Any]:
    from studio.core.dit import DiT

    model = DiT(
        sample_size=c["sample"], patch_size=2, in_channels=4, hidden_size=c["heads"] * c["head_dim"],
        depth=c["depth"], num_heads=c["heads"], num_classes=1000,
    ).eval()
    x = torch.randn(c["batch"], 4, c["sample"], c["sample"])
    t = torch.randint(0, 1000, (c["batch"],))
    y = torch.randint(0, 1000, (c["batch"],))

    def forward() -> None:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            model(x, t, y)

    bf16_model = DiT.from_config(model.config).to(torch.bfloat16).eval()
    bf16_model.load_state_dict(model.state_dict())
    xb = x.to(torch.bfloat16)

    def forward_bf16_weights() -> None:
        with torch.no_grad():
            bf16_model(xb, t, y)

    flops = dit_forward_flops(model, x, t, y, c)
    n = max(64, round((flops / 2) ** (1 / 3)))  # square matmul doing the same FLOPs (2·n³)
    a = torch.randn(n, n, dtype=torch.bfloat16)
    b = torch.randn(n, n, dtype=torch.bfloat16)
    rows = {}
    for name, fn in (("autocast", forward), ("bf16 weights", forward_bf16_weights)):
        timing = paired(fn, lambda: a @ b, reps)
        rows[name] = {
            "dit_tflops": round(flops / (timing["ours_ms"] / 1e3) / 1e12, 4),
            "matmul_tflops": round(2 * n**3 / (timing["theirs_ms"] / 1e3) / 1e12, 4),
            # from the per-pair time ratio (same FLOPs up to rounding n), robust to load changes
            "mfu": round((2 * n**3 / flops) / timing["ratio"], 3),
        }
    return {
        "mfu_config": {**c, "gflops_forward": round(flops / 1e9, 2), "matmul_n": n},
        "mfu_rows": rows,
        "dit_tflops_bf16": rows["autocast"]["dit_tflops"],
        "matmul_tflops_bf16": rows["autocast"]["matmul_tflops"],
        "mfu_bf16": rows["autocast"]["mfu"],
        "mfu_bf16_weights": rows["bf16 weights"]["mfu"],
    }


def dit_forward_flops(model, x, t, y, c: dict) -> float:
    """Matmul/conv FLOPs from ``FlopCounterMode`` plus the attention core (QKᵀ and AV), which the
    counter does not see on CPU: 4·B·heads·N²·head_dim per layer."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(x, t, y)
    n_tokens = (c["sample"] // 2) ** 2
    attention = 4 * c["batch"] * c["heads"] * n_tokens**2 * c["head_dim"] * c["depth"]
    return float(counter.get_total_flops() + attention)


# ----------------------------------------------------------------------------- report


def machine() -> dict[str, Any]:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {
        "date": _dt.date.today().isoformat(), "cpu": cpu, "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
        "python": platform.python_version(), "load_avg_1m_at_start": load,
    }


def write_report(r: dict[str, Any]) -> None:
    DOC.parent.mkdir(parents=True, exist_ok=True)
    plot_scaling(r["attention_rows"], PLOT)
    m, d, a = r["machine"], r["dit_config"], r["attention_rows"]
    ok = lambda cond: "met" if cond else "NOT met"  # noqa: E731
    lines = [
        "# Core benchmark",
        "",
        f"`studio bench core{' --quick' if r['quick'] else ''}` (studio/bench/core.py), run {m['date']} on "
        f"{m['cpu']}, {m['cores']} cores, torch {m['torch']} ({m['torch_threads']} threads), Python {m['python']}. "
        f"The machine is shared (1-minute load average {m['load_avg_1m_at_start']:.1f} at start), so each figure is "
        "the median of back-to-back pairs in alternating order; ratios are more trustworthy than absolute times. "
        f"Total run time {r['seconds']} s.",
        "",
        "## 1. Core DiT vs diffusers `DiTTransformer2DModel` (forward + backward)",
        "",
        f"Same config and weights (imported through the key map): hidden {d['hidden']}, {d['heads']} heads, "
        f"depth {d['depth']}, patch 2, {d['tokens']} tokens, batch {d['batch']}, class-conditional, learned σ. "
        "One training step = forward, MSE of the output, backward.",
        "",
        "| precision | core (ms) | diffusers (ms) | core ÷ diffusers |",
        "|---|---|---|---|",
    ]
    for prec, row in r["dit_rows"].items():
        lines.append(f"| {prec} | {row['ours_ms']} | {row['theirs_ms']} | **{row['ratio']}** |")
    lines += [
        "",
        f"Goal core ≤ 1.0× diffusers (bf16): {ok(r['dit_time_ratio_vs_diffusers'] <= 1.0)} "
        f"({r['dit_time_ratio_vs_diffusers']}×; fp32 {r['dit_time_ratio_vs_diffusers_fp32']}×).",
        "",
        "## 2. `linear` (LiT) vs `sdpa` attention",
        "",
        f"Attention module (projections + kernel), width {ATTN_DIM}, sdpa {SDPA_HEADS} heads, linear {LINEAR_HEADS} "
        "heads + 5×5 DWC, batch 1, fp32 inference forward. Peak memory = peak of the running sum of CPU-allocator "
        "allocations minus frees recorded by `torch.profiler(profile_memory=True)` during one forward.",
        "",
        "| tokens | grid | sdpa (ms) | linear (ms) | time ratio | sdpa peak (MiB) | linear peak (MiB) | memory ratio |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in a:
        lines.append(
            f"| {row['tokens']} | {row['grid'][0]}×{row['grid'][1]} | {row['sdpa_ms']} | {row['linear_ms']} | "
            f"{row['time_ratio']} | {row['sdpa_peak_mib']} | {row['linear_peak_mib']} | {row['mem_ratio']} |"
        )
    ratio16 = r["linear_time_ratio_vs_sdpa_16k"]
    lines += [
        "",
        f"Scaling exponents (time ∝ tokensᵏ over the three largest sizes): linear k = {r['linear_time_exponent']}, "
        f"sdpa k = {r['sdpa_time_exponent']}; memory: linear k = {r['linear_mem_exponent']}, "
        f"sdpa k = {r['sdpa_mem_exponent']}.",
        "",
        "At small sizes both are dominated by fixed per-call costs (on a loaded machine every multithreaded op "
        "waits for a time slice), so the exponents use the three largest sizes.",
        "",
        f"Goal linear ≤ 0.25× sdpa at 16,384 tokens: {ok(ratio16 is not None and ratio16 <= 0.25)} ({ratio16}×). "
        f"Goal linear cost grows linearly: {ok(r['linear_time_exponent'] <= 1.2)} (k = {r['linear_time_exponent']}).",
        "",
        "Memory: torch's CPU SDPA is a flash-style tiled kernel, so softmax attention here never holds the "
        "N×N score matrix and its peak memory also grows linearly (projections dominate); LiT's memory saving is "
        "against materialised attention (at 16,384 tokens the fp32 scores of 6 heads alone would be "
        f"{6 * 16384 ** 2 * 4 / 2 ** 30:.0f} GiB). The linear kernel's extra memory is its DWC branch and the "
        "float32 feature maps.",
        "",
        f"![attention scaling]({PLOT.name})",
        "",
        "## 3. bf16 MFU",
        "",
        f"DiT forward under bf16 autocast (hidden {r['mfu_config']['heads'] * r['mfu_config']['head_dim']}, "
        f"depth {r['mfu_config']['depth']}, {(r['mfu_config']['sample'] // 2) ** 2} tokens, batch "
        f"{r['mfu_config']['batch']}: {r['mfu_config']['gflops_forward']} GFLOP counted by `FlopCounterMode` plus "
        f"the attention core) vs one bf16 {r['mfu_config']['matmul_n']}² matmul of the same FLOPs.",
        "",
        "| DiT forward | DiT (TFLOP/s) | plain matmul (TFLOP/s) | MFU |",
        "|---|---|---|---|",
        *[
            f"| {name} | {row['dit_tflops']} | {row['matmul_tflops']} | **{row['mfu']}** |"
            for name, row in r["mfu_rows"].items()
        ],
        "",
        "`autocast` = float32 weights under `torch.autocast(bfloat16)` (training and the default inference path: "
        "every Linear casts its weight each call); `bf16 weights` = the model converted to bfloat16 at load "
        "(inference with `dtype=bfloat16`). MFU is the median per-pair time ratio scaled by the FLOP ratio. "
        "On this shared 2-core machine each multithreaded op pays a scheduling stall, so many mid-sized ops "
        "(a DiT) lose more than one big matmul does; expect higher MFU on an idle machine.",
        "",
        "## JSON keys",
        "",
        f"`dit_time_ratio_vs_diffusers` = {r['dit_time_ratio_vs_diffusers']}, "
        f"`linear_time_ratio_vs_sdpa_16k` = {ratio16}, `mfu_bf16` = {r['mfu_bf16']}.",
        "",
    ]
    tmp = DOC.with_suffix(".md.tmp")
    tmp.write_text("\n".join(lines))
    os.replace(tmp, DOC)


def plot_scaling(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = [r["tokens"] for r in rows]
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(10, 4))
    for key, label in (("sdpa", "sdpa (softmax)"), ("linear", "linear (LiT)")):
        ax_t.loglog(n, [r[f"{key}_ms"] for r in rows], "o-", label=label)
        ax_m.loglog(n, [max(r[f"{key}_peak_mib"], 1e-3) for r in rows], "o-", label=label)
    # reference slopes anchored at the largest size, where fixed per-call overheads no longer dominate
    ax_t.loglog(n, [rows[-1]["linear_ms"] * x / n[-1] for x in n], "k:", label="∝ N")
    ax_t.loglog(n, [rows[-1]["sdpa_ms"] * (x / n[-1]) ** 2 for x in n], "k--", label="∝ N²")
    ax_t.set(xlabel="tokens", ylabel="forward time (ms)", title="time")
    ax_m.set(xlabel="tokens", ylabel="peak allocator memory (MiB)", title="memory")
    for ax in (ax_t, ax_m):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)
