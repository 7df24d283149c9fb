"""Effect classifier: a small 3D CNN trained on real procedural clips, used to name the effect in
generated clips (the "effect accuracy" metric).

Input per clip: the frames, their change from the reference frame, and the reference instance
mask (which object to look at), (B, 7, T, H, W). Training adds pixel noise so that the slight
grain of generated clips is not out of distribution.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from studio.tasks.vfx.data import ClipDataset
from studio.tasks.vfx.effects import EFFECT_NAMES


class EffectClassifier(nn.Module):
    def __init__(self, classes: int = len(EFFECT_NAMES), width: int = 16):
        super().__init__()
        w = width
        self.net = nn.Sequential(
            nn.Conv3d(7, w, 3, padding=1), nn.GELU(), nn.MaxPool3d((1, 2, 2)),  # (w, T, 16, 16)
            nn.Conv3d(w, 2 * w, 3, padding=1), nn.GELU(), nn.MaxPool3d(2),  # (2w, T/2, 8, 8)
            nn.Conv3d(2 * w, 3 * w, 3, padding=1), nn.GELU(), nn.MaxPool3d(2),  # (3w, T/4, 4, 4)
            nn.Conv3d(3 * w, 4 * w, 3, padding=1), nn.GELU(),
            nn.AdaptiveAvgPool3d(1), nn.Flatten(),
        )
        self.head = nn.Linear(4 * w, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.net(x))  # (B, classes)


def features(frames: torch.Tensor, ref_mask: torch.Tensor) -> torch.Tensor:
    """(B, T, H, W, 3) uint8 (or float in [0, 1]) + (B, H, W) mask → (B, 7, T, H, W)."""
    v = frames.float() / 255.0 if frames.dtype == torch.uint8 else frames.float()
    v = v.permute(0, 4, 1, 2, 3)  # (B, 3, T, H, W)
    diff = v - v[:, :, :1]
    m = ref_mask.float()[:, None, None].expand(-1, 1, v.shape[2], -1, -1)
    return torch.cat([v * 2 - 1, diff * 4, m * 2 - 1], 1)


def train_classifier(out: Path, n_train: int = 2200, n_val: int = 330, steps: int = 1000, batch: int = 16,
                     seed: int = 0, log=print) -> dict:
    """Train on seed ``seed`` clips, measure on held-out seed ``seed + 1`` clips; save safetensors."""
    torch.manual_seed(seed)
    train = ClipDataset(EFFECT_NAMES, n_train, seed=1000 + seed)
    val = ClipDataset(EFFECT_NAMES, n_val, seed=2000 + seed)
    model = EffectClassifier()
    opt = torch.optim.AdamW(model.parameters(), 2e-3, weight_decay=1e-2)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 2e-3, total_steps=steps, pct_start=0.1)
    frames = torch.stack([torch.from_numpy(c.frames) for c in train.clips])
    masks = torch.stack([torch.from_numpy(c.mask[0]) for c in train.clips])
    labels = torch.tensor([EFFECT_NAMES.index(c.effect) for c in train.clips])
    g = torch.Generator().manual_seed(seed)
    t0 = time.time()
    for step in range(steps):
        idx = torch.randint(0, len(labels), (batch,), generator=g)
        x = features(frames[idx], masks[idx])
        x = x + 0.06 * torch.randn(x.shape, generator=g)  # grain of generated clips
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = nn.functional.cross_entropy(model(x).float(), labels[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 50 == 0:
            log(f"classifier step {step} loss {loss.item():.3f}")
    acc = accuracy(model, val)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out),
              metadata={"classes": ",".join(EFFECT_NAMES), "val_accuracy": f"{acc:.4f}", "steps": str(steps),
                        "train_clips": str(n_train)})
    return {"val_accuracy": acc, "steps": steps, "train_clips": n_train, "val_clips": n_val,
            "seconds": round(time.time() - t0, 1)}


@torch.no_grad()
def predict(model: EffectClassifier, frames: torch.Tensor, ref_mask: torch.Tensor) -> np.ndarray:
    model.eval()
    out = []
    for i in range(0, len(frames), 64):
        out.append(model(features(frames[i : i + 64], ref_mask[i : i + 64])).argmax(1))
    return torch.cat(out).numpy()


def accuracy(model: EffectClassifier, ds: ClipDataset) -> float:
    frames = torch.stack([torch.from_numpy(c.frames) for c in ds.clips])
    masks = torch.stack([torch.from_numpy(c.mask[0]) for c in ds.clips])
    labels = np.array([EFFECT_NAMES.index(c.effect) for c in ds.clips])
    return float((predict(model, frames, masks) == labels).mean())


def load_classifier(path: Path) -> EffectClassifier:
    model = EffectClassifier()
    model.load_state_dict(load_file(str(path)))
    return model.eval()
