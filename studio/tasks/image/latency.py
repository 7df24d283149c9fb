"""LiT vs DiT inference latency and peak memory as the token count grows, measured side by side.

Each (model, size) point runs in a fresh subprocess. Peak memory of a forward = the process's
high-water mark of resident memory (``VmHWM``, reset just before through ``/proc/self/clear_refs``)
minus its resident memory right before the forward — what the forward itself needed. Times are
the best of ``repeats`` forwards (batch 1, no grad, float32, one thread) to damp the noise of a
shared machine; both models are timed in the same process one after the other.
"""

from __future__ import annotations

import json
import subprocess
import sys

_CHILD = r"""
import json, sys, time, torch
torch.set_num_threads(1)
from studio.core.dit import DiT
cfg, size, repeats = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
torch.manual_seed(0)
m = DiT(**cfg).eval()
ctx, mask, pooled = torch.randn(1, 16, 384), torch.ones(1, 16, dtype=torch.bool), torch.randn(1, 384)
def fwd(s):
    with torch.no_grad():
        m(torch.randn(1, cfg["in_channels"], s, s), torch.tensor([500]), context=ctx, context_mask=mask, pooled=pooled)
fwd(cfg["patch_size"] * 2)
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1])  # kB
times, peaks = [], []
for _ in range(repeats):
    open("/proc/self/clear_refs", "w").write("5")  # reset the resident high-water mark
    rss0 = status("VmRSS:")
    t0 = time.perf_counter(); fwd(size); times.append(time.perf_counter() - t0)
    peaks.append(status("VmHWM:") - rss0)
print(json.dumps({"time_s": min(times), "peak_mb": max(0, max(peaks)) / 1024}))
"""


def measure(config: dict, size: int, repeats: int = 2) -> dict:
    out = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(config), str(size), str(repeats)],
                         capture_output=True, text=True, check=True, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin",
                                                                          "HF_HUB_OFFLINE": "1"})
    return json.loads(out.stdout.strip().splitlines()[-1])


def compare(dit_config: dict, sizes: list[int], repeats: int = 2, log=print) -> list[dict]:
    """Rows of {size, tokens, dit_s, lit_s, ratio, dit_mb, lit_mb} for a DiT config and its LiT twin."""
    lit_config = {**dit_config, "attention": "linear"}
    rows = []
    for size in sizes:
        d = measure(dit_config, size, repeats)
        lt = measure(lit_config, size, repeats)
        tokens = (size // dit_config["patch_size"]) ** 2
        row = {"size": size, "tokens": tokens, "dit_s": d["time_s"], "lit_s": lt["time_s"],
               "ratio": lt["time_s"] / d["time_s"], "dit_mb": d["peak_mb"], "lit_mb": lt["peak_mb"]}
        log(f"latency {row}")
        rows.append(row)
    return rows


def plot(rows: list[dict], path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(9, 3.5))
    t = [r["tokens"] for r in rows]
    ax[0].loglog(t, [r["dit_s"] * 1e3 for r in rows], "o-", label="DiT (softmax)")
    ax[0].loglog(t, [r["lit_s"] * 1e3 for r in rows], "s-", label="LiT (linear)")
    ax[0].set_xlabel("tokens")
    ax[0].set_ylabel("forward latency (ms)")
    ax[0].legend()
    ax[1].loglog(t, [max(r["dit_mb"], 0.1) for r in rows], "o-", label="DiT")
    ax[1].loglog(t, [max(r["lit_mb"], 0.1) for r in rows], "s-", label="LiT")
    ax[1].set_xlabel("tokens")
    ax[1].set_ylabel("extra peak memory (MB)")
    ax[1].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
