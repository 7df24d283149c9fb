"""The captioned procedural image set, and kohya-style folders of images + same-name captions.

A sample is described by a :class:`CaptionSpec` (shape, colour, size, count, position, background
texture and colour, fill) from which both the picture (through :mod:`studio.data.shapes`) and the
caption ("two small red triangles on a striped blue background") are made, so the caption is
true by construction and the spec doubles as the label for the evaluation classifier.

Splits are deterministic by seed:

- ``train``: (shape, colour) pairs outside :data:`UNSEEN_PAIRS`;
- ``heldout``: new samples (other seeds) of the same distribution — prompts the model never saw
  as images;
- ``unseen``: only the (shape, colour) pairs in :data:`UNSEEN_PAIRS` — combinations never seen in
  training (each shape and each colour was seen, never together);
- ``all``: every pair — real data for the *evaluation classifier*, which must recognise the unseen
  combinations too (trained only on ``train`` it learns "blue is never a star" and misjudges them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np

from studio.data.shapes import (BACKGROUND_COLOURS, COLOURS, PLURALS, SHAPES, TEXTURES, Background, ObjectSpec,
                                Scene, draw_scene, place_objects)

SIZES: dict[str, float] = {"small": 0.3, "large": 0.45}  # object extent / image side
COUNT_WORDS = {1: "a", 2: "two", 3: "three"}
# where a single object sits: (x0, y0, x1, y1) region of its centre
POSITIONS: dict[str, tuple[float, float, float, float]] = {
    "in the top left": (0.0, 0.0, 0.5, 0.5),
    "in the top right": (0.5, 0.0, 1.0, 0.5),
    "in the bottom left": (0.0, 0.5, 0.5, 1.0),
    "in the bottom right": (0.5, 0.5, 1.0, 1.0),
    "in the center": (0.35, 0.35, 0.65, 0.65),
}
# (shape, colour) combinations held out of training: each shape once, spread over the colours
UNSEEN_PAIRS: frozenset[tuple[str, str]] = frozenset(
    (s, c) for i, s in enumerate(SHAPES) for j, c in enumerate(COLOURS) if (3 * i + j) % 8 == 0
)
Split = Literal["train", "heldout", "unseen", "all"]
SPLITS: tuple[str, ...] = ("train", "heldout", "unseen", "all")
_SPLIT_STREAM = {"train": 0, "heldout": 1, "unseen": 2, "all": 3}  # independent random streams per split


@dataclass(frozen=True)
class CaptionSpec:
    shape: str
    colour: str
    size: str = "large"
    count: int = 1
    position: str | None = None  # only for count == 1
    texture: str = "plain"
    bg_colour: str = "gray"
    fill: str = "solid"


def caption_of(spec: CaptionSpec, trigger: str = "") -> str:
    """The sentence a user would type for ``spec``."""
    noun = spec.shape if spec.count == 1 else PLURALS[spec.shape]
    where = f" {spec.position}" if spec.position else ""
    text = f"{COUNT_WORDS[spec.count]} {spec.size} {spec.colour} {noun}{where} on a {spec.texture} {spec.bg_colour} background"
    return f"{trigger}, {text}" if trigger else text


def scene_of(spec: CaptionSpec, rng: np.random.Generator) -> Scene:
    """Lay out ``spec`` (positions jittered by ``rng``, small rotations) as a drawable scene."""
    size = SIZES[spec.size] * float(rng.uniform(0.9, 1.1))
    region = POSITIONS[spec.position] if spec.position else (0.0, 0.0, 1.0, 1.0)
    centres = place_objects(rng, [size] * spec.count, region)
    objs = tuple(ObjectSpec(spec.shape, spec.colour, size, c, float(rng.uniform(-8, 8)), spec.fill) for c in centres)
    return Scene(objs, Background(spec.texture, spec.bg_colour, period=float(rng.uniform(0.2, 0.3))))


def random_spec(rng: np.random.Generator, split: Split = "train", fill: str = "solid") -> CaptionSpec:
    """One random spec of ``split``: unseen pairs only in ``unseen``, never in the others."""
    if split == "unseen":
        shape, colour = sorted(UNSEEN_PAIRS)[int(rng.integers(len(UNSEEN_PAIRS)))]
    elif split == "all":
        shape, colour = str(rng.choice(SHAPES)), str(rng.choice(list(COLOURS)))
    else:
        while True:
            shape, colour = str(rng.choice(SHAPES)), str(rng.choice(list(COLOURS)))
            if (shape, colour) not in UNSEEN_PAIRS:
                break
    count = int(rng.integers(1, 4))
    bg = str(rng.choice([c for c in BACKGROUND_COLOURS if c != colour]))
    return CaptionSpec(
        shape=shape, colour=colour, size=str(rng.choice(list(SIZES))), count=count,
        position=str(rng.choice(list(POSITIONS))) if count == 1 else None,
        texture=str(rng.choice(TEXTURES)), bg_colour=bg, fill=fill,
    )


@dataclass
class ImageSet:
    """Images (N, H, W, 3) uint8 with captions; ``specs`` when the labels are known (procedural)."""

    images: np.ndarray
    captions: list[str]
    specs: list[CaptionSpec] | None = None

    def __len__(self) -> int:
        return len(self.captions)

    def labels(self) -> dict[str, np.ndarray]:
        """Integer labels per classifier head (shape, colour, count)."""
        if self.specs is None:
            raise ValueError("labels: this image set has no specs (a user folder)")
        return {
            "shape": np.array([SHAPES.index(s.shape) for s in self.specs]),
            "colour": np.array([list(COLOURS).index(s.colour) for s in self.specs]),
            "count": np.array([s.count - 1 for s in self.specs]),
        }


HEADS: dict[str, int] = {"shape": len(SHAPES), "colour": len(COLOURS), "count": 3}


def make_split(split: Split, n: int, seed: int = 0, size: int = 32, fill: str = "solid", trigger: str = "") -> ImageSet:
    """``n`` samples of ``split`` at ``size`` px; the same (split, n, seed, size) gives the same set."""
    if split not in SPLITS:
        raise ValueError(f"split: unknown {split!r}; choose from {', '.join(SPLITS)}")
    if size not in (32, 64) and size % 8:
        raise ValueError(f"size: {size} px is not a multiple of 8")
    rng = np.random.default_rng([seed, _SPLIT_STREAM[split]])
    specs = [random_spec(rng, split, fill) for _ in range(n)]
    images = np.stack([draw_scene(scene_of(s, rng), size)[0] for s in specs]) if n else np.zeros((0, size, size, 3), np.uint8)
    return ImageSet(images, [caption_of(s, trigger) for s in specs], specs)


def with_fill(specs: list[CaptionSpec], fill: str) -> list[CaptionSpec]:
    return [replace(s, fill=fill) for s in specs]


# ----------------------------------------------------------------------------- kohya folders

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
_REPEATS = re.compile(r"^(\d+)_(.+)$")  # kohya's "10_concept" folder convention


def export_folder(data: ImageSet, folder: str | Path, prefix: str = "") -> Path:
    """Write ``{i}.png`` + ``{i}.txt`` (the caption) per sample — the kohya / ai-toolkit layout."""
    import cv2

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for i, (img, cap) in enumerate(zip(data.images, data.captions)):
        stem = folder / f"{prefix}{i:05d}"
        tmp = stem.with_suffix(".tmp.png")
        if not cv2.imwrite(str(tmp), cv2.cvtColor(img, cv2.COLOR_RGB2BGR)):
            raise OSError(f"could not write {tmp}")
        tmp.replace(stem.with_suffix(".png"))
        stem.with_suffix(".txt").write_text(cap + "\n", encoding="utf-8")
    return folder


def _fit(img: np.ndarray, size: int) -> np.ndarray:
    """Centre-crop to a square and resize to ``size`` (area filter down, cubic up)."""
    import cv2

    h, w = img.shape[:2]
    s = min(h, w)
    img = img[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
    interp = cv2.INTER_AREA if s >= size else cv2.INTER_CUBIC
    return cv2.resize(img, (size, size), interpolation=interp)


def import_folder(folder: str | Path, size: int = 32) -> ImageSet:
    """Read a user folder of images with same-name ``.txt`` captions (recursively).

    kohya conventions: a sub-folder named ``N_concept`` repeats its images N times, and an image
    without a ``.txt`` takes the folder's concept words as caption. Unreadable images are errors
    naming the file.
    """
    import cv2

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"dataset folder: {folder} does not exist")
    images, captions = [], []
    for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and ".tmp" not in p.suffixes):
        m = _REPEATS.match(path.parent.name) if path.parent != folder else None
        repeats, concept = (int(m.group(1)), m.group(2)) if m else (1, path.parent.name)
        txt = path.with_suffix(".txt")
        caption = txt.read_text(encoding="utf-8").strip() if txt.exists() else concept
        if not caption:
            raise ValueError(f"caption: {txt} is empty")
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f"image: cannot read {path} (corrupt or not an image)")
        img = _fit(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), size)
        images += [img] * repeats
        captions += [caption] * repeats
    if not images:
        raise ValueError(f"dataset folder: no images ({', '.join(IMAGE_SUFFIXES)}) under {folder}")
    return ImageSet(np.stack(images), captions)
