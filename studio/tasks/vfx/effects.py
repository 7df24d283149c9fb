"""Visual effects as real motion code (Open-VFX-mini).

Every effect maps one object layer (RGB + alpha, full frame) and an effect progress ``p`` in
[0, 1] to the layer at that moment. ``p = 0`` is the untouched object, ``p = 1`` the final state;
the clip renderer holds ``p`` at 0 before the start frame and at 1 after the end frame, so the
object is still outside the annotated interval. Progress is linear in time so that every frame
inside the interval moves (an ease-in would make the first frames invisible to any detector).

Per-clip randomness (fragment velocities, drip phases, new colours) is drawn once by
``params(rng, layer)`` and reused for every frame, so an effect is a deterministic function of
(layer, p, params).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import cv2
import numpy as np


@dataclass
class Layer:
    """One object on a transparent full-frame canvas."""

    rgb: np.ndarray  # (H, W, 3) float32 in [0, 1]
    alpha: np.ndarray  # (H, W) float32 in [0, 1]

    @property
    def size(self) -> int:
        return self.alpha.shape[0]

    def bbox(self) -> tuple[int, int, int, int]:
        """(y0, x0, y1, x1), end-exclusive, of the opaque pixels."""
        ys, xs = np.nonzero(self.alpha > 0.5)
        if len(ys) == 0:
            return 0, 0, 0, 0
        return int(ys.min()), int(xs.min()), int(ys.max()) + 1, int(xs.max()) + 1

    def center(self) -> tuple[float, float]:
        w = self.alpha.sum()
        if w <= 0:
            return self.size / 2, self.size / 2
        ys, xs = np.mgrid[: self.size, : self.size]
        return float((ys * self.alpha).sum() / w), float((xs * self.alpha).sum() / w)


@dataclass(frozen=True)
class Effect:
    name: str
    verb: str  # the prompt's verb phrase: "the red square explodes"
    params: Callable[[np.random.Generator, Layer], dict[str, Any]]
    render: Callable[[Layer, float, dict[str, Any]], Layer]


# --- warping helpers -------------------------------------------------------------------------


def _warp_affine(layer: Layer, m: np.ndarray) -> Layer:
    """Forward affine ``m`` (2x3, x/y order as OpenCV) applied to colour and alpha together."""
    s = layer.size
    premul = np.dstack([layer.rgb * layer.alpha[..., None], layer.alpha])  # (H, W, 4)
    out = cv2.warpAffine(premul, m.astype(np.float32), (s, s), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return _unpremultiply(out)


def _remap(layer: Layer, src_x: np.ndarray, src_y: np.ndarray) -> Layer:
    """Output pixel (y, x) takes the input at (src_y, src_x); outside the frame is transparent."""
    premul = np.dstack([layer.rgb * layer.alpha[..., None], layer.alpha])
    out = cv2.remap(premul, src_x.astype(np.float32), src_y.astype(np.float32), cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return _unpremultiply(out)


def _unpremultiply(premul: np.ndarray) -> Layer:
    alpha = np.clip(premul[..., 3], 0.0, 1.0)
    rgb = premul[..., :3] / np.maximum(alpha[..., None], 1e-6)
    return Layer(np.clip(rgb, 0.0, 1.0).astype(np.float32), alpha.astype(np.float32))


def _scale_about(layer: Layer, sx: float, sy: float, cx: float, cy: float) -> Layer:
    m = np.array([[sx, 0.0, cx - sx * cx], [0.0, sy, cy - sy * cy]])
    return _warp_affine(layer, m)


def _cells(layer: Layer, cell: int) -> list[tuple[int, int]]:
    """Top-left corners of the cell grid squares that hold part of the object."""
    y0, x0, y1, x1 = layer.bbox()
    out = []
    for y in range(y0, y1, cell):
        for x in range(x0, x1, cell):
            if layer.alpha[y : y + cell, x : x + cell].max() > 0.5:
                out.append((y, x))
    return out


def _paste_cells(layer: Layer, cells: list[tuple[int, int]], offsets: np.ndarray, fade: np.ndarray,
                 cell: int) -> Layer:
    """Move each cell by its (dy, dx) offset (sub-pixel, bilinear) and scale its alpha by ``fade``."""
    s = layer.size
    acc = np.zeros((s, s, 4), np.float32)
    for (y, x), (dy, dx), f in zip(cells, offsets, fade):
        piece = np.zeros((s, s, 4), np.float32)
        a = layer.alpha[y : y + cell, x : x + cell]
        piece[y : y + cell, x : x + cell, :3] = layer.rgb[y : y + cell, x : x + cell] * a[..., None]
        piece[y : y + cell, x : x + cell, 3] = a
        m = np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]], np.float32)
        moved = cv2.warpAffine(piece, m, (s, s), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        acc = acc * (1.0 - moved[..., 3:4] * f) + moved * f  # later fragments drawn on top
    return _unpremultiply(acc)


def _cell_size(layer: Layer) -> int:
    return max(2, layer.size // 10)


# --- the effects -----------------------------------------------------------------------------


def _explode_params(rng: np.random.Generator, layer: Layer) -> dict[str, Any]:
    cell = _cell_size(layer)
    cells = _cells(layer, cell)
    cy, cx = layer.center()
    centers = np.array([(y + cell / 2 - cy, x + cell / 2 - cx) for y, x in cells]).reshape(-1, 2)
    norm = np.linalg.norm(centers, axis=1, keepdims=True) + 1e-3
    # slow enough that most fragments are still in frame when they burn out
    speed = layer.size * rng.uniform(0.2, 0.4, size=(len(cells), 1))
    vel = centers / norm * speed + rng.normal(0, layer.size * 0.05, size=(len(cells), 2))
    return {"cell": cell, "cells": cells, "vel": vel, "gravity": layer.size * 0.3}


def _explode(layer: Layer, p: float, q: dict[str, Any]) -> Layer:
    # fragments fly out radially under gravity and burn away in the last third
    offsets = q["vel"] * p + np.array([0.5 * q["gravity"] * p * p, 0.0])
    fade = np.full(len(q["cells"]), min(1.0, 3.0 * (1.0 - p)))
    return _paste_cells(layer, q["cells"], offsets, fade, q["cell"])


def _crumble_params(rng: np.random.Generator, layer: Layer) -> dict[str, Any]:
    cell = _cell_size(layer)
    cells = _cells(layer, cell)
    y0, _, y1, _ = layer.bbox()
    # upper pieces let go first, each falls (at constant speed, so every frame moves) to a
    # rubble heap at the object's base
    delay = np.array([0.4 * (y - y0) / max(y1 - y0, 1) for y, _ in cells]) * rng.uniform(0.6, 1.0, len(cells))
    floor = min(layer.size - cell, y1 - cell + layer.size // 16)
    drop = np.array([max(floor - y - rng.integers(0, max(1, (y1 - y0) // 4)), 0) for y, _ in cells], float)
    drift = rng.normal(0, layer.size * 0.06, len(cells))
    return {"cell": cell, "cells": cells, "delay": delay, "drop": drop, "drift": drift}


def _crumble(layer: Layer, p: float, q: dict[str, Any]) -> Layer:
    local = np.clip((p - q["delay"]) / (1.0 - q["delay"]), 0.0, 1.0)
    offsets = np.stack([q["drop"] * local, q["drift"] * local], axis=1)
    return _paste_cells(layer, q["cells"], offsets, np.ones(len(q["cells"])), q["cell"])


def _melt_params(rng: np.random.Generator, layer: Layer) -> dict[str, Any]:
    return {"waves": rng.uniform(1.0, 2.5), "phase": rng.uniform(0, 2 * np.pi), "depth": rng.uniform(0.6, 0.8)}


def _melt(layer: Layer, p: float, q: dict[str, Any]) -> Layer:
    # downward drip warp: each column sinks by its own amount, the base spreads into a puddle
    s = layer.size
    y0, x0, y1, x1 = layer.bbox()
    h, w = max(y1 - y0, 1), max(x1 - x0, 1)
    ys, xs = np.mgrid[:s, :s].astype(np.float32)
    wave = 0.5 + 0.5 * np.sin(2 * np.pi * q["waves"] * (xs - x0) / w + q["phase"])
    keep = np.clip(1.0 - p * (q["depth"] + 0.2 * wave), 0.12, 1.0)  # remaining height fraction per column
    src_y = y1 - (y1 - ys) / keep
    cx = (x0 + x1) / 2
    spread = 1.0 + 0.45 * p * np.clip((ys - (y1 - h * keep)) / (h * keep + 1e-3), 0, 1)
    src_x = cx + (xs - cx) / spread
    return _remap(layer, src_x, src_y)


def _no_params(rng: np.random.Generator, layer: Layer) -> dict[str, Any]:
    return {}


def _inflate(layer: Layer, p: float, q: dict[str, Any]) -> Layer:
    cy, cx = layer.center()
    k = 1.0 + 0.7 * p
    return _scale_about(layer, k, k, cx, cy)


def _deflate(layer: Layer, p: float, q: dict[str, Any]) -> Layer:
    # loses air: shrinks towards its base and sags (height goes faster than width)
    _, _, y1, _ = layer.bbox()
    _, cx = layer.center()
    out = _scale_about(layer, 1.0 - 0.45 * p, 1.0 - 0.65 * p, cx, y1)
    out.rgb = out.rgb * (1.0 - 0.25 * p)
    return out


def _squish(layer: Layer, p: float, q: dict[str, Any]) -> Layer:
    # pressed from above: flattens and widens, about constant area
    _, _, y1, _ = layer.bbox()
    _, cx = layer.center()
    sy = 1.0 - 0.65 * p
    return _scale_about(layer, 1.0 / np.sqrt(sy) * (1.0 + 0.1 * p), sy, cx, y1)


def _levitate_params(rng: np.random.Generator, layer: Layer) -> dict[str, Any]:
    return {"height": layer.size * rng.uniform(0.22, 0.32)}


def _levitate(layer: Layer, p: float, q: dict[str, Any]) -> Layer:
    m = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, -q["height"] * p]])
    return _warp_affine(layer, m)


def _dissolve_params(rng: np.random.Generator, layer: Layer) -> dict[str, Any]:
    s = layer.size
    noise = cv2.GaussianBlur(rng.random((s, s)).astype(np.float32), (0, 0), 0.8)
    # rank-normalise inside the object so exactly a share p of its pixels is gone at progress p
    inside = layer.alpha > 0.5
    ranks = np.zeros((s, s), np.float32)
    order = noise[inside].argsort().argsort()
    ranks[inside] = (order + 1) / max(len(order), 1)
    return {"threshold": ranks}


def _dissolve(layer: Layer, p: float, q: dict[str, Any]) -> Layer:
    keep = (q["threshold"] > p).astype(np.float32)
    return Layer(layer.rgb.copy(), layer.alpha * keep)


def _spin_params(rng: np.random.Generator, layer: Layer) -> dict[str, Any]:
    return {"turns": float(rng.choice([-1.0, 1.0]))}


def _spin(layer: Layer, p: float, q: dict[str, Any]) -> Layer:
    cy, cx = layer.center()
    m = cv2.getRotationMatrix2D((cx, cy), 360.0 * q["turns"] * p, 1.0)
    return _warp_affine(layer, m)


def _tada_params(rng: np.random.Generator, layer: Layer) -> dict[str, Any]:
    colors = np.array([[0.55, 0.05, 0.1], [0.3, 0.05, 0.45], [0.05, 0.1, 0.4], [0.9, 0.75, 0.1]])
    return {"cloth": colors[rng.integers(len(colors))]}


def _tada(layer: Layer, p: float, q: dict[str, Any]) -> Layer:
    # a cloth rises over the object (first half), then drops away: the object is gone
    s = layer.size
    y0, x0, y1, x1 = layer.bbox()
    pad = max(1, s // 32)
    y0, x0, y1, x1 = max(y0 - pad, 0), max(x0 - pad, 0), min(y1 + pad, s), min(x1 + pad, s)
    cover = (2 * p) if p < 0.5 else 2 * (1.0 - p)
    top = y1 - (y1 - y0) * cover
    ys = np.arange(s, dtype=np.float32)[:, None]
    cloth = np.clip(y1 - ys, 0, 1) * np.clip(ys - top + 1, 0, 1)  # soft top edge
    cloth = np.broadcast_to(cloth, (s, s)).copy()
    cloth[:, :x0] = 0
    cloth[:, x1:] = 0
    base = layer if p < 0.5 else Layer(layer.rgb, np.zeros_like(layer.alpha))
    shade = 0.8 + 0.2 * np.sin(np.arange(s, dtype=np.float32) * 1.7)[None, :, None]  # folds
    rgb = base.rgb * (1 - cloth[..., None]) + q["cloth"][None, None, :] * shade * cloth[..., None]
    alpha = np.maximum(base.alpha, cloth)
    return Layer(np.clip(rgb, 0, 1).astype(np.float32), alpha.astype(np.float32))


def _transform_params(rng: np.random.Generator, layer: Layer) -> dict[str, Any]:
    mean = layer.rgb[layer.alpha > 0.5].mean(0) if (layer.alpha > 0.5).any() else np.full(3, 0.5)
    new = 1.0 - mean  # the complementary colour: always clearly different
    new = np.clip(new + rng.normal(0, 0.1, 3), 0, 1)
    s = layer.size
    ys, xs = np.mgrid[:s, :s]
    period = rng.integers(3, 6)
    pattern = ((xs + ys) // period % 2).astype(np.float32)[..., None]  # diagonal stripes
    target = new[None, None, :] * (0.75 + 0.25 * pattern)
    return {"target": target.astype(np.float32)}


def _transform(layer: Layer, p: float, q: dict[str, Any]) -> Layer:
    # the object turns into a new colour and pattern, evenly over the interval (a wipe would
    # leave the last frames touching only the narrow tip of a heart or triangle)
    rgb = layer.rgb * (1 - p) + q["target"] * p
    return Layer(rgb.astype(np.float32), layer.alpha.copy())


EFFECTS: dict[str, Effect] = {
    e.name: e
    for e in [
        Effect("explode", "explodes", _explode_params, _explode),
        Effect("crumble", "crumbles", _crumble_params, _crumble),
        Effect("melt", "melts", _melt_params, _melt),
        Effect("inflate", "inflates", _no_params, _inflate),
        Effect("deflate", "deflates", _no_params, _deflate),
        Effect("squish", "gets squished", _no_params, _squish),
        Effect("levitate", "levitates", _levitate_params, _levitate),
        Effect("dissolve", "dissolves", _dissolve_params, _dissolve),
        Effect("spin", "spins", _spin_params, _spin),
        Effect("tada", "vanishes under a cloth, ta-da", _tada_params, _tada),
        Effect("transform", "transforms into a new colour", _transform_params, _transform),
    ]
}
EFFECT_NAMES: tuple[str, ...] = tuple(EFFECTS)


# --- generic motion (what the base model learns before any effect) ---------------------------


def _slide_params(rng: np.random.Generator, layer: Layer) -> dict[str, Any]:
    return {"dist": layer.size * rng.uniform(0.2, 0.35)}


def _slide(dy: float, dx: float) -> Callable[[Layer, float, dict[str, Any]], Layer]:
    def render(layer: Layer, p: float, q: dict[str, Any]) -> Layer:
        m = np.array([[1.0, 0.0, dx * q["dist"] * p], [0.0, 1.0, dy * q["dist"] * p]])
        return _warp_affine(layer, m)

    return render


def _turn_params(rng: np.random.Generator, layer: Layer) -> dict[str, Any]:
    return {"angle": float(rng.choice([-1.0, 1.0]) * rng.uniform(30, 60))}


def _turn(layer: Layer, p: float, q: dict[str, Any]) -> Layer:
    cy, cx = layer.center()
    return _warp_affine(layer, cv2.getRotationMatrix2D((cx, cy), q["angle"] * p, 1.0))


def _grow(k: float) -> Callable[[Layer, float, dict[str, Any]], Layer]:
    def render(layer: Layer, p: float, q: dict[str, Any]) -> Layer:
        cy, cx = layer.center()
        s = 1.0 + (k - 1.0) * p
        return _scale_about(layer, s, s, cx, cy)

    return render


def _fade(layer: Layer, p: float, q: dict[str, Any]) -> Layer:
    return Layer(layer.rgb.copy(), layer.alpha * (1.0 - 0.7 * p))


def _still(layer: Layer, p: float, q: dict[str, Any]) -> Layer:
    return Layer(layer.rgb.copy(), layer.alpha.copy())


MOTIONS: dict[str, Effect] = {
    e.name: e
    for e in [
        Effect("slide_left", "slides left", _slide_params, _slide(0, -1)),
        Effect("slide_right", "slides right", _slide_params, _slide(0, 1)),
        Effect("slide_up", "moves up", _slide_params, _slide(-1, 0)),
        Effect("slide_down", "moves down", _slide_params, _slide(1, 0)),
        Effect("turn", "turns", _turn_params, _turn),
        Effect("grow", "grows a little", _no_params, _grow(1.3)),
        Effect("shrink", "shrinks a little", _no_params, _grow(0.75)),
        Effect("fade", "fades", _no_params, _fade),
        Effect("still", "stays still", _no_params, _still),
    ]
}
