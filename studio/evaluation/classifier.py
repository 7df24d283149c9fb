"""A small multi-head CNN image classifier: trained on a plugin's real data, it scores generated
images (per-attribute predictions) and supplies the feature space for Fréchet distances.

Images enter as uint8 (N, H, W, 3); they are resized to the classifier's input size, so one
classifier scores 32 px and 64 px generations alike.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class ClassifierSpec:
    heads: dict[str, int] = field(default_factory=dict)  # head name -> number of classes
    size: int = 32  # input side in pixels
    width: int = 32  # channels of the first stage (×2 per stage)
    feature_dim: int = 128

    def __post_init__(self) -> None:
        if not self.heads:
            raise ValueError("heads: a classifier needs at least one head")
        for name, n in self.heads.items():
            if n < 2:
                raise ValueError(f"heads: head {name!r} has {n} classes (need ≥ 2)")


def _stage(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, 1), nn.GroupNorm(8, cout), nn.SiLU(),
        nn.Conv2d(cout, cout, 3, 1, 1), nn.GroupNorm(8, cout), nn.SiLU(),
    )


class ImageClassifier(nn.Module):
    def __init__(self, spec: ClassifierSpec):
        super().__init__()
        self.spec = spec
        w = spec.width
        self.body = nn.Sequential(_stage(3, w, 1), _stage(w, 2 * w, 2), _stage(2 * w, 4 * w, 2), _stage(4 * w, 4 * w, 2))
        # mean and max pooling: the mean sees how much of a colour there is, the max whether a part exists
        self.proj = nn.Sequential(nn.Linear(8 * w, spec.feature_dim), nn.SiLU())
        self.heads = nn.ModuleDict({k: nn.Linear(spec.feature_dim, n) for k, n in spec.heads.items()})

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, 3, H, W) in [-1, 1] → (B, feature_dim)."""
        if x.shape[-1] != self.spec.size or x.shape[-2] != self.spec.size:
            x = F.interpolate(x, size=(self.spec.size, self.spec.size), mode="bilinear", antialias=True, align_corners=False)
        h = self.body(x)  # (B, 4w, H/8, W/8)
        pooled = torch.cat([h.mean((2, 3)), h.amax((2, 3))], 1)  # (B, 8w)
        return self.proj(pooled)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        f = self.features(x)
        return {k: head(f) for k, head in self.heads.items()}


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, 3) → float (N, 3, H, W) in [-1, 1]."""
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images: expected (N, H, W, 3) uint8, got shape {images.shape}")
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 127.5 - 1


def _augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Label-preserving jitter: small brightness/contrast changes and pixel noise, so the
    classifier also judges slightly imperfect (generated) images sensibly."""
    b = x.shape[0]
    gain = 1 + 0.1 * (torch.rand(b, 1, 1, 1, generator=g) - 0.5)
    bias = 0.1 * (torch.rand(b, 1, 1, 1, generator=g) - 0.5)
    return (x * gain + bias + 0.05 * torch.randn(x.shape, generator=g)).clamp(-1, 1)


def train_classifier(images: np.ndarray, labels: dict[str, np.ndarray], spec: ClassifierSpec, steps: int = 1500,
                     batch_size: int = 128, lr: float = 2e-3, seed: int = 0, log_every: int = 0) -> ImageClassifier:
    """Train a fresh classifier on real images with integer labels per head (cross-entropy sum)."""
    missing = set(spec.heads) - set(labels)
    if missing:
        raise ValueError(f"labels: no labels for heads {sorted(missing)}")
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = ImageClassifier(spec)
    x_all = to_tensor(images)
    y_all = {k: torch.as_tensor(labels[k]).long() for k in spec.heads}
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    model.train()
    for step in range(steps):
        idx = torch.randint(0, len(x_all), (batch_size,), generator=g)
        logits = model(_augment(x_all[idx], g))
        loss = sum(F.cross_entropy(logits[k], y_all[k][idx]) for k in spec.heads)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if log_every and step % log_every == 0:
            print(f"classifier step {step}: loss {loss.item():.4f}", flush=True)
    return model.eval()


@torch.no_grad()
def _batched(model: ImageClassifier, images: np.ndarray, fn, batch_size: int = 256) -> list:
    model.eval()
    return [fn(to_tensor(images[i:i + batch_size])) for i in range(0, len(images), batch_size)]


def extract_features(model: ImageClassifier, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Penultimate features (N, feature_dim) for Fréchet distances."""
    return torch.cat(_batched(model, images, model.features, batch_size)).numpy()


def predict(model: ImageClassifier, images: np.ndarray, batch_size: int = 256) -> dict[str, np.ndarray]:
    """Arg-max class per head, each (N,)."""
    outs = _batched(model, images, model, batch_size)
    return {k: torch.cat([o[k] for o in outs]).argmax(1).numpy() for k in model.spec.heads}


def accuracy(pred: dict[str, np.ndarray], labels: dict[str, np.ndarray]) -> dict[str, float]:
    """Per-head accuracy plus ``all`` (every head right on the same image)."""
    hits = {k: pred[k] == np.asarray(labels[k]) for k in pred}
    out = {k: float(v.mean()) for k, v in hits.items()}
    out["all"] = float(np.logical_and.reduce(list(hits.values())).mean())
    return out


def save_classifier(model: ImageClassifier, folder: str | Path) -> Path:
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / "classifier.safetensors.tmp"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp))
    (folder / "classifier.json").write_text(json.dumps(asdict(model.spec), indent=2))
    tmp.replace(folder / "classifier.safetensors")
    return folder


def load_classifier(folder: str | Path) -> ImageClassifier:
    from safetensors.torch import load_file

    folder = Path(folder)
    spec = ClassifierSpec(**json.loads((folder / "classifier.json").read_text()))
    model = ImageClassifier(spec)
    model.load_state_dict(load_file(str(folder / "classifier.safetensors")))
    return model.eval()
