"""Target datasets for Diffscaler: three procedural styles far from the base's data, plus folders.

The base DiT learned filled, colourful shapes on dark textured backgrounds. The targets move away
from that in different directions:

- ``outline``: line art — dark ink outlines of a shape on off-white paper (no fill, no colour),
- ``pixel``: pixel art — a shape drawn on a 16×16 grid in a 4-colour Game-Boy palette, upscaled
  with hard nearest-neighbour edges,
- ``photo-glyph``: a different object family (digits) on noisy photograph-like backgrounds (colour
  1/f noise, the power spectrum of natural images, plus sensor-like pixel noise).

Each is class-conditional (the class is the shape or digit) and deterministic by seed; the
train and held-out splits use disjoint seeds.

User folders follow the usual image-folder conventions, under ``datasets/diffscaler/<name>/``
(or any path): either one sub-folder per class (``<name>/<class>/*.png``), or a flat folder of
images with an optional same-name ``.txt`` holding the class name (kohya-style). Without classes
the dataset is unconditional.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from studio.data.shapes import ObjectSpec, object_polygon

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
SPLIT_SEEDS = {"train": 0, "heldout": 1_000_003}


class DatasetSpec(Protocol):
    classes: tuple[str, ...]
    description: str

    def render(self, rng: np.random.Generator, label: int, size: int) -> np.ndarray: ...


def _shape_mask(rng: np.random.Generator, shape: str, side: int, fill: bool, thickness: int,
                size_range: tuple[float, float] = (0.45, 0.75)) -> np.ndarray:
    """A shape of random size/place/small rotation on a ``side``² canvas → uint8 mask."""
    size = float(rng.uniform(*size_range))
    half = size / 2
    center = (float(rng.uniform(half, 1 - half)), float(rng.uniform(half, 1 - half)))
    obj = ObjectSpec(shape=shape, colour="gray", size=size, center=center,
                     rotation=float(rng.uniform(-12, 12)))
    poly = np.round(object_polygon(obj, side)).astype(np.int32)
    mask = np.zeros((side, side), np.uint8)
    if fill:
        cv2.fillPoly(mask, [poly], 1)
    else:
        cv2.polylines(mask, [poly], True, 1, thickness=thickness, lineType=cv2.LINE_AA)
    return mask


@dataclass(frozen=True)
class OutlineSpec:
    """Line art: ink outline of one shape on paper."""

    classes: tuple[str, ...] = ("circle", "square", "triangle", "star")
    description: str = "line art: dark ink outlines of a shape on off-white paper"

    def render(self, rng: np.random.Generator, label: int, size: int) -> np.ndarray:
        ss = 4  # supersample for smooth ink
        side = size * ss
        paper = np.array([245, 240, 228], np.float32) + rng.normal(0, 4, 3)
        ink = np.array([25, 25, 35], np.float32) + rng.normal(0, 8, 3)
        thickness = int(rng.integers(ss, 2 * ss + 1))
        mask = _shape_mask(rng, self.classes[label], side, fill=False, thickness=thickness).astype(np.float32)
        img = paper * (1 - mask[..., None]) + ink * mask[..., None]  # (S, S, 3)
        img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
        return np.clip(img, 0, 255).astype(np.uint8)


GAMEBOY = np.array([[15, 56, 15], [48, 98, 48], [139, 172, 15], [155, 188, 15]], np.float32)


@dataclass(frozen=True)
class PixelSpec:
    """Pixel art: a 16×16 sprite in a 4-colour palette, upscaled with hard edges."""

    classes: tuple[str, ...] = ("circle", "square", "triangle", "star")
    grid: int = 16
    description: str = "pixel art: 16x16 sprites of a shape in the 4-colour Game Boy palette"

    def render(self, rng: np.random.Generator, label: int, size: int) -> np.ndarray:
        g = self.grid
        bg, fg, edge = rng.permutation(4)[:3]
        sprite = np.full((g, g), bg, np.int64)
        hi = _shape_mask(rng, self.classes[label], g * 8, fill=True, thickness=1, size_range=(0.55, 0.9))
        cover = cv2.resize(hi.astype(np.float32), (g, g), interpolation=cv2.INTER_AREA)  # (g, g)
        body = cover > 0.5
        sprite[body] = fg
        # a one-pixel outline in a third palette colour, as sprites have
        ring = cv2.dilate(body.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) & ~body
        sprite[ring & (rng.random((g, g)) < 0.9)] = edge
        img = GAMEBOY[sprite]  # (g, g, 3)
        return cv2.resize(img, (size, size), interpolation=cv2.INTER_NEAREST).astype(np.uint8)


def photo_like(rng: np.random.Generator, size: int) -> np.ndarray:
    """A photograph-like background: colour 1/f noise (natural images' power spectrum falls as
    ~1/f²), a random colour cast and a light/dark gradient → (size, size, 3) float32 0..255."""
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    f = np.sqrt(fx**2 + fy**2)
    f[0, 0] = 1.0
    amp = 1.0 / f**1.6  # (size, size//2+1)
    chans = []
    for _ in range(3):
        phase = rng.uniform(0, 2 * math.pi, amp.shape)
        chans.append(np.fft.irfft2(amp * np.exp(1j * phase), s=(size, size)))
    field = np.stack(chans, -1)  # (H, W, 3)
    field = 0.4 * field + 0.6 * field.mean(-1, keepdims=True)  # correlated channels, like real colour
    field = (field - field.mean()) / (field.std() + 1e-6)
    cast = rng.uniform(60, 190, 3)
    yy = np.linspace(-1, 1, size)[:, None, None]
    return (cast + 38 * field + rng.uniform(-30, 30) * yy).astype(np.float32)


@dataclass(frozen=True)
class PhotoGlyphSpec:
    """A digit glyph on a noisy photograph-like background."""

    classes: tuple[str, ...] = ("0", "1", "2", "3")
    noise: float = 14.0
    description: str = "digits (a different object family) on noisy photograph-like 1/f backgrounds"

    def render(self, rng: np.random.Generator, label: int, size: int) -> np.ndarray:
        bg = photo_like(rng, size)
        ss = 4
        text = np.zeros((size * ss, size * ss), np.uint8)
        scale = float(rng.uniform(0.75, 1.0)) * size * ss / 30
        (tw, th), _ = cv2.getTextSize(self.classes[label], cv2.FONT_HERSHEY_DUPLEX, scale, 2 * ss)
        ox = int(rng.uniform(0, max(size * ss - tw, 1)))
        oy = int(rng.uniform(th, size * ss))
        cv2.putText(text, self.classes[label], (ox, oy), cv2.FONT_HERSHEY_DUPLEX, scale, 1, 2 * ss, cv2.LINE_AA)
        glyph = cv2.resize(text.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA)[..., None]
        colour = np.array([255, 235, 60], np.float32) if rng.random() < 0.5 else np.array([250, 250, 250], np.float32)
        img = bg * (1 - glyph) + colour * glyph + rng.normal(0, self.noise, bg.shape)
        return np.clip(img, 0, 255).astype(np.uint8)


PROCEDURAL: dict[str, DatasetSpec] = {
    "outline": OutlineSpec(),
    "pixel": PixelSpec(),
    "photo-glyph": PhotoGlyphSpec(),
}


@dataclass
class ImageSet:
    """Images (N, H, W, 3) uint8 with class indices (N,) and the class names."""

    name: str
    images: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.images)

    def tensors(self):
        """(N, 3, H, W) float32 in [-1, 1] and (N,) long labels."""
        import torch

        x = torch.from_numpy(self.images).permute(0, 3, 1, 2).float() / 127.5 - 1
        return x, torch.from_numpy(self.labels).long()


def procedural(name: str, n: int, split: str = "train", size: int = 32, seed: int = 0) -> ImageSet:
    """``n`` images of a procedural dataset, classes balanced, deterministic by (split, seed)."""
    if name not in PROCEDURAL:
        raise KeyError(f"datasets: unknown dataset {name!r}; procedural ones: {', '.join(PROCEDURAL)}")
    if split not in SPLIT_SEEDS:
        raise ValueError(f"split: {split!r} is not one of {tuple(SPLIT_SEEDS)}")
    spec = PROCEDURAL[name]
    rng = np.random.default_rng([SPLIT_SEEDS[split], seed, sum(map(ord, name))])
    labels = np.arange(n) % len(spec.classes)
    rng.shuffle(labels)
    images = np.stack([spec.render(rng, int(c), size) for c in labels]) if n else np.zeros((0, size, size, 3), np.uint8)
    return ImageSet(name, images, labels.astype(np.int64), spec.classes)


def folder(path: str | Path, size: int = 32, limit: int | None = None) -> ImageSet:
    """A user folder: class sub-folders, or flat images with optional same-name ``.txt`` classes."""
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"datasets: {root} is not a folder")
    subdirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    items: list[tuple[Path, str | None]] = []
    if subdirs:
        for d in subdirs:
            items += [(f, d.name) for f in sorted(d.iterdir()) if f.suffix.lower() in IMAGE_EXTS]
    else:
        for f in sorted(root.iterdir()):
            if f.suffix.lower() in IMAGE_EXTS:
                txt = f.with_suffix(".txt")
                items.append((f, txt.read_text().strip() if txt.is_file() else None))
    if not items:
        raise ValueError(f"datasets: no images ({', '.join(IMAGE_EXTS)}) in {root}")
    items = items[:limit] if limit else items
    named = sorted({c for _, c in items if c})
    if named and any(c is None for _, c in items):
        raise ValueError(f"datasets: {root} labels some images but not others; label all or none")
    images = np.stack([_read_square(f, size) for f, _ in items])
    labels = np.array([named.index(c) if c else 0 for _, c in items], np.int64)
    return ImageSet(root.name, images, labels, tuple(named))


def _read_square(path: Path, size: int) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"datasets: cannot read image {path}")
    h, w = img.shape[:2]
    s = min(h, w)
    img = img[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]  # centre crop
    interp = cv2.INTER_AREA if s > size else cv2.INTER_NEAREST
    return cv2.cvtColor(cv2.resize(img, (size, size), interpolation=interp), cv2.COLOR_BGR2RGB)


def load(name_or_path: str, n: int, split: str = "train", size: int = 32, seed: int = 0) -> ImageSet:
    """A procedural dataset by name, a folder under ``datasets/diffscaler/``, or a folder path.

    For folders the held-out split is every 5th image, the train split the rest.
    """
    if name_or_path in PROCEDURAL:
        return procedural(name_or_path, n, split, size, seed)
    from studio.paths import datasets_dir

    path = Path(name_or_path)
    if not path.is_dir():
        path = datasets_dir() / "diffscaler" / name_or_path
    if not path.is_dir():
        raise KeyError(f"datasets: unknown dataset {name_or_path!r} (procedural: {', '.join(PROCEDURAL)}; "
                       f"or a folder under {datasets_dir() / 'diffscaler'})")
    full = folder(path, size)
    keep = (np.arange(len(full)) % 5 == 4) if split == "heldout" else (np.arange(len(full)) % 5 != 4)
    idx = np.flatnonzero(keep)[:n]
    return ImageSet(full.name, full.images[idx], full.labels[idx], full.classes)


def grid(images: np.ndarray, cols: int) -> np.ndarray:
    """(N, H, W, 3) → one (rows·H, cols·W, 3) image, 1-px gaps."""
    n, h, w, _ = images.shape
    rows = math.ceil(n / cols)
    out = np.full((rows * (h + 1) - 1, cols * (w + 1) - 1, 3), 255, np.uint8)
    for i, im in enumerate(images):
        r, c = divmod(i, cols)
        out[r * (h + 1):r * (h + 1) + h, c * (w + 1):c * (w + 1) + w] = im
    return out
