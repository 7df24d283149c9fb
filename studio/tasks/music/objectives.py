"""Losses for the trainer: ``objective(model, batch) -> (loss, logs)``."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from studio.tasks.music.windows import IGNORE


def theme_objective(model, batch: dict[str, torch.Tensor]):
    memory = model.encode_theme(batch["theme"], batch["theme_offsets"], batch["theme_mask"])
    logits = model(batch["tokens"], batch["gates"], batch["offsets"], memory, batch["theme_mask"])  # (B, N, V)
    loss = F.cross_entropy(logits.float().flatten(0, 1), batch["targets"].flatten(), ignore_index=IGNORE)
    inside = (batch["gates"] > 0) & (batch["targets"] != IGNORE)
    return loss, {"theme_frac": float(inside.float().mean())}


def baseline_objective(model, batch: dict[str, torch.Tensor]):
    logits = model(batch["tokens"])  # (B, N, V)
    loss = F.cross_entropy(logits.float().flatten(0, 1), batch["targets"].flatten(), ignore_index=IGNORE)
    return loss, {}


@torch.no_grad()
def mean_loss(model, objective, loader, autocast) -> float:
    """Token-weighted mean cross-entropy over a loader (held-out windows)."""
    model.eval()
    total, n = 0.0, 0
    for batch in loader:
        with autocast():
            loss, _ = objective(model, batch)
        k = int((batch["targets"] != IGNORE).sum())
        total += float(loss) * k
        n += k
    model.train()
    return total / max(n, 1)
