"""Metrics as JSON lines (one object per logged step) and the loss-curve plot drawn from them."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping


class MetricsLog:
    """Append-only JSONL; on resume, lines past the resumed step (written after that checkpoint) go."""

    def __init__(self, path: Path, resume_step: int | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is None:
            self.path.write_text("")
        elif self.path.exists():
            kept = [line for line in self.path.read_text().splitlines()
                    if line.strip() and json.loads(line).get("step", 0) <= resume_step]
            self.path.write_text("".join(f"{line}\n" for line in kept))

    def write(self, record: Mapping[str, Any]) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps({k: _plain(v) for k, v in record.items()}) + "\n")


def _plain(v: Any) -> Any:
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v


def read_metrics(path: Path) -> list[dict[str, Any]]:
    p = Path(path)
    if not p.exists():
        return []
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


def plot_loss_curve(metrics_path: Path, png_path: Path, key: str = "loss") -> Path | None:
    """Loss against step (raw + a running mean) as a PNG; None when nothing was logged."""
    rows = [r for r in read_metrics(metrics_path) if isinstance(r.get(key), (int, float))]
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in rows]
    values = [r[key] for r in rows]
    smooth, acc = [], None
    for v in values:
        acc = v if acc is None else 0.9 * acc + 0.1 * v
        smooth.append(acc)
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.plot(steps, values, alpha=0.35, label=key)
    ax.plot(steps, smooth, label=f"{key} (running mean)")
    ax.set_xlabel("step")
    ax.set_ylabel(key)
    if min(values) > 0 and max(values) / min(values) > 20:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    png_path = Path(png_path)
    tmp = png_path.with_name(f".{png_path.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(png_path)
    return png_path
