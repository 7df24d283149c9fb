"""User inputs → model inputs: reference image, instance mask (painted, or from a box / a point).

Any image size is accepted: the short side is resized to the model size (32 px) and the centre
is cropped (``data.fit_square``); a painted mask must have the image's size and goes through the
same resize/crop. A box becomes a mask by OpenCV GrabCut initialised with the box; a point by a
flood fill of similar colour from that point. Coordinates are in the original image's pixels.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from studio.tasks.base import InputError
from studio.tasks.vfx.data import fit_square


def read_image(path: str | Path, field: str = "image") -> np.ndarray:
    """RGB uint8 (H, W, 3); raises ``InputError(field)`` for a missing, corrupt or non-image file."""
    p = Path(path)
    if not p.is_file():
        raise InputError(field, f"no such file: {p}")
    data = np.fromfile(str(p), np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if img is None:
        raise InputError(field, f"{p.name} is not a readable image (corrupt or not an image file)")
    if img.dtype != np.uint8:
        img = cv2.convertScaleAbs(img, alpha=255.0 / max(float(img.max()), 1.0))
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    elif img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    else:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if min(img.shape[:2]) < 8:
        raise InputError(field, f"image is too small ({img.shape[1]}×{img.shape[0]}; at least 8×8)")
    return img


def read_mask(path: str | Path, shape: tuple[int, int]) -> np.ndarray:
    """A painted mask (any non-black pixel, or alpha > 0) of the image's size → bool (H, W)."""
    p = Path(path)
    if not p.is_file():
        raise InputError("mask", f"no such file: {p}")
    data = np.fromfile(str(p), np.uint8)
    m = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if m is None:
        raise InputError("mask", f"{p.name} is not a readable image")
    if m.shape[:2] != shape:
        raise InputError("mask", f"mask is {m.shape[1]}×{m.shape[0]} but the image is {shape[1]}×{shape[0]}")
    if m.ndim == 3:
        m = m[..., 3] if m.shape[2] == 4 and m[..., 3].min() < 255 else m[..., :3].max(-1)
    mask = m > 127
    if not mask.any():
        raise InputError("mask", "mask is empty (no white pixel)")
    return mask


def parse_ints(text: str, n: int, field: str) -> tuple[int, ...]:
    try:
        vals = tuple(int(round(float(v))) for v in str(text).split(","))
    except ValueError:
        raise InputError(field, f"expected {n} comma-separated numbers, got {text!r}") from None
    if len(vals) != n:
        raise InputError(field, f"expected {n} comma-separated numbers, got {len(vals)}")
    return vals


def mask_from_box(img: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """GrabCut inside ``box`` (x0, y0, x1, y1); falls back to the box itself if GrabCut finds nothing."""
    h, w = img.shape[:2]
    x0, y0, x1, y1 = box
    if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
        raise InputError("box", f"box {box} is not inside the {w}×{h} image with x0 < x1, y0 < y1")
    mask = np.zeros((h, w), np.uint8)
    rect_mask = np.zeros((h, w), bool)
    rect_mask[y0:y1, x0:x1] = True
    if (x1 - x0) >= w - 1 and (y1 - y0) >= h - 1:
        return rect_mask  # GrabCut needs some background outside the box
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    try:
        cv2.grabCut(cv2.cvtColor(img, cv2.COLOR_RGB2BGR), mask, (x0, y0, x1 - x0, y1 - y0), bgd, fgd, 5,
                    cv2.GC_INIT_WITH_RECT)
        fg = (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)
    except cv2.error:
        fg = np.zeros((h, w), bool)
    return fg if fg.sum() >= 4 else rect_mask


def mask_from_point(img: np.ndarray, point: tuple[int, int], tolerance: int = 10) -> np.ndarray:
    """Flood fill of similar colour from ``point`` (x, y)."""
    h, w = img.shape[:2]
    x, y = point
    if not (0 <= x < w and 0 <= y < h):
        raise InputError("point", f"point {point} is outside the {w}×{h} image")
    ff = np.zeros((h + 2, w + 2), np.uint8)
    # floating range (neighbour to neighbour): follows shading gradients, stops at edges
    flags = 4 | cv2.FLOODFILL_MASK_ONLY | (255 << 8)
    cv2.floodFill(img.copy(), ff, (x, y), 0, (tolerance,) * 3, (tolerance,) * 3, flags)
    return ff[1:-1, 1:-1] > 0


def to_model_size(img: np.ndarray, mask: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Resize (short side) + centre-crop both; the mask keeps a pixel when most of it was inside."""
    ref = fit_square(img, size)
    m = fit_square(mask.astype(np.float32), size, cv2.INTER_AREA) >= 0.5
    if not m.any():
        raise InputError("mask", f"the object is lost after resizing to {size}×{size} (too small or cropped away)")
    return ref, m
