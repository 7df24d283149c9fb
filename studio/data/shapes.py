"""Procedural drawing layer: shapes, colours, fills and background textures.

One scene = a background (texture + colour) and a few objects (shape, colour, size, centre,
rotation, fill). ``draw_scene`` renders it at any resolution and returns the RGB image together
with one boolean instance mask per object (the part of the object that stays visible after the
objects drawn above it). The image, vfx and diffscaler plugins build their datasets on it.

Rendering is supersampled (drawn ``supersample``× larger with OpenCV, then area-downsampled), so
small 32 px images keep smooth edges and masks stay consistent with the pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Literal

import cv2
import numpy as np

# Shape kinds. Rotations are kept small by ``random_object`` so that e.g. a square never turns
# into a diamond: the name must stay true to the picture.
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "diamond", "star", "cross", "heart")
PLURALS: dict[str, str] = {
    "circle": "circles", "square": "squares", "triangle": "triangles", "diamond": "diamonds",
    "star": "stars", "cross": "crosses", "heart": "hearts",
}

# Object colours (full brightness). Backgrounds use darker shades of a colour so objects stand out.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 38, 38),
    "orange": (245, 140, 20),
    "yellow": (240, 220, 40),
    "green": (40, 185, 60),
    "cyan": (40, 205, 225),
    "blue": (45, 85, 235),
    "purple": (150, 60, 205),
    "pink": (250, 125, 195),
}
BACKGROUND_COLOURS: dict[str, tuple[int, int, int]] = {**COLOURS, "gray": (150, 150, 150)}
TEXTURES: tuple[str, ...] = ("plain", "striped", "checkered", "dotted", "gradient")
FILLS: tuple[str, ...] = ("solid", "outline", "shaded")

Shape = Literal["circle", "square", "triangle", "diamond", "star", "cross", "heart"]
Texture = Literal["plain", "striped", "checkered", "dotted", "gradient"]
Fill = Literal["solid", "outline", "shaded"]


@dataclass(frozen=True)
class ObjectSpec:
    """One object. Geometry is resolution-free: ``center`` in [0, 1]² (x, y), ``size`` = the
    object's extent as a fraction of the image side, ``rotation`` in degrees."""

    shape: Shape
    colour: str
    size: float = 0.4
    center: tuple[float, float] = (0.5, 0.5)
    rotation: float = 0.0
    fill: Fill = "solid"

    def __post_init__(self) -> None:
        if self.shape not in SHAPES:
            raise ValueError(f"shape: unknown {self.shape!r}; choose from {', '.join(SHAPES)}")
        if self.colour not in COLOURS and self.colour not in BACKGROUND_COLOURS:
            raise ValueError(f"colour: unknown {self.colour!r}; choose from {', '.join(BACKGROUND_COLOURS)}")
        if not 0.0 < self.size <= 1.0:
            raise ValueError(f"size: {self.size} is not in (0, 1]")
        if self.fill not in FILLS:
            raise ValueError(f"fill: unknown {self.fill!r}; choose from {', '.join(FILLS)}")


@dataclass(frozen=True)
class Background:
    texture: Texture = "plain"
    colour: str = "gray"
    period: float = 0.25  # stripe / checker / dot spacing as a fraction of the side

    def __post_init__(self) -> None:
        if self.texture not in TEXTURES:
            raise ValueError(f"texture: unknown {self.texture!r}; choose from {', '.join(TEXTURES)}")
        if self.colour not in BACKGROUND_COLOURS:
            raise ValueError(f"colour: unknown background {self.colour!r}; choose from {', '.join(BACKGROUND_COLOURS)}")


@dataclass(frozen=True)
class Scene:
    objects: tuple[ObjectSpec, ...] = ()
    background: Background = field(default_factory=Background)


# ----------------------------------------------------------------------------- outlines

def _unit_outline(shape: str) -> np.ndarray:
    """Polygon of a shape inscribed in the unit box [-0.5, 0.5]² (y down), (P, 2) float."""
    if shape == "circle":
        a = np.linspace(0, 2 * math.pi, 64, endpoint=False)
        return 0.5 * np.stack([np.cos(a), np.sin(a)], 1)
    if shape == "square":
        return np.array([[-0.42, -0.42], [0.42, -0.42], [0.42, 0.42], [-0.42, 0.42]])
    if shape == "triangle":
        return np.array([[0.0, -0.5], [0.5, 0.4], [-0.5, 0.4]])
    if shape == "diamond":
        return np.array([[0.0, -0.5], [0.42, 0.0], [0.0, 0.5], [-0.42, 0.0]])
    if shape == "star":
        a = -math.pi / 2 + np.arange(10) * math.pi / 5
        r = np.where(np.arange(10) % 2 == 0, 0.5, 0.2)
        return np.stack([r * np.cos(a), r * np.sin(a) + 0.04], 1)
    if shape == "cross":
        w, h = 0.16, 0.5
        return np.array([[-w, -h], [w, -h], [w, -w], [h, -w], [h, w], [w, w], [w, h], [-w, h],
                         [-w, w], [-h, w], [-h, -w], [-w, -w]])
    if shape == "heart":
        t = np.linspace(0, 2 * math.pi, 64, endpoint=False)
        x = 16 * np.sin(t) ** 3
        y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
        pts = np.stack([x, y], 1)
        pts -= (pts.max(0) + pts.min(0)) / 2
        return pts / (pts.max(0) - pts.min(0)).max()
    raise ValueError(f"shape: unknown {shape!r}")


def object_polygon(obj: ObjectSpec, side: int) -> np.ndarray:
    """The object's outline in pixel coordinates of a ``side``×``side`` canvas, (P, 2) float."""
    pts = _unit_outline(obj.shape) * obj.size * side
    th = math.radians(obj.rotation)
    rot = np.array([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]])
    return pts @ rot.T + np.array(obj.center) * side


# ----------------------------------------------------------------------------- rendering

def _shade(rgb: tuple[int, int, int], factor: float) -> np.ndarray:
    return np.clip(np.array(rgb, np.float32) * factor, 0, 255)


def draw_background(bg: Background, side: int) -> np.ndarray:
    """(side, side, 3) float32 in 0..255. Dark base + a mid-tone pattern in the same hue."""
    base, accent = _shade(BACKGROUND_COLOURS[bg.colour], 0.30), _shade(BACKGROUND_COLOURS[bg.colour], 0.55)
    img = np.empty((side, side, 3), np.float32)
    img[:] = base
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32) / side
    p = bg.period
    if bg.texture == "striped":
        on = ((xx + yy) / p % 1.0) < 0.5  # diagonal stripes
    elif bg.texture == "checkered":
        on = ((np.floor(xx / p) + np.floor(yy / p)) % 2) == 1
    elif bg.texture == "dotted":
        on = ((xx / p % 1.0 - 0.5) ** 2 + (yy / p % 1.0 - 0.5) ** 2) < 0.06
    elif bg.texture == "gradient":
        img[:] = base + (accent - base) * yy[..., None] * 1.6
        return np.clip(img, 0, 255)
    else:
        return img
    img[on] = accent
    return img


def _fill_object(canvas: np.ndarray, obj: ObjectSpec, side: int, thickness: int) -> np.ndarray:
    """Draw one object onto ``canvas`` (float32 HWC); returns its boolean footprint."""
    poly = np.round(object_polygon(obj, side)).astype(np.int32)
    footprint = np.zeros((side, side), np.uint8)
    colour = _shade(COLOURS.get(obj.colour, BACKGROUND_COLOURS.get(obj.colour)), 1.0)
    if obj.fill == "outline":
        cv2.polylines(footprint, [poly], True, 1, thickness=thickness)
    else:
        cv2.fillPoly(footprint, [poly], 1)
    on = footprint.astype(bool)
    if obj.fill == "shaded":
        # light from the top left: brightness falls across the object's box
        x0, y0 = poly.min(0)
        x1, y1 = poly.max(0)
        yy, xx = np.mgrid[0:side, 0:side].astype(np.float32)
        t = ((xx - x0) / max(x1 - x0, 1) + (yy - y0) / max(y1 - y0, 1)) / 2
        light = (1.25 - 0.75 * np.clip(t, 0, 1))[..., None]  # (H, W, 1)
        canvas[on] = np.clip(colour * light, 0, 255)[on]
    else:
        canvas[on] = colour
    return on


def draw_scene(scene: Scene, size: int = 32, supersample: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Render ``scene`` → (image uint8 (size, size, 3), masks bool (N, size, size)).

    Objects are painted in order (later on top); each mask is the visible part of its object.
    """
    if size < 8:
        raise ValueError(f"size: {size} is too small (minimum 8 px)")
    side = size * supersample
    canvas = draw_background(scene.background, side)  # (S, S, 3)
    owner = np.full((side, side), -1, np.int32)  # which object is visible at each pixel
    thickness = max(1, round(side * 0.04))
    for i, obj in enumerate(scene.objects):
        on = _fill_object(canvas, obj, side, thickness)
        owner[on] = i
    image = cv2.resize(canvas, (size, size), interpolation=cv2.INTER_AREA)
    image = np.clip(np.round(image), 0, 255).astype(np.uint8)
    # each output pixel goes to whoever covers most of it (background = index 0), so masks never overlap
    cover = np.stack([cv2.resize((owner == i).astype(np.float32), (size, size), interpolation=cv2.INTER_AREA)
                      for i in range(-1, len(scene.objects))])  # (N + 1, size, size)
    winner = cover.argmax(0) - 1
    masks = np.stack([winner == i for i in range(len(scene.objects))]) if scene.objects else np.zeros((0, size, size), bool)
    return image, masks


# ----------------------------------------------------------------------------- sampling

def place_objects(rng: np.random.Generator, sizes: list[float], region: tuple[float, float, float, float] = (0, 0, 1, 1),
                  tries: int = 200) -> list[tuple[float, float]]:
    """Centres for objects of the given sizes inside ``region`` (x0, y0, x1, y1), keeping them
    inside the image and apart (bounding circles do not overlap) when there is room."""
    x0, y0, x1, y1 = region
    centres: list[tuple[float, float]] = []
    for s in sizes:
        half = s / 2 + 0.02
        lo_x, hi_x = max(x0 + half * 0.5, half), min(x1 - half * 0.5, 1 - half)
        lo_y, hi_y = max(y0 + half * 0.5, half), min(y1 - half * 0.5, 1 - half)
        if lo_x > hi_x:
            lo_x = hi_x = (x0 + x1) / 2
        if lo_y > hi_y:
            lo_y = hi_y = (y0 + y1) / 2
        best, best_gap = None, -1e9
        for _ in range(tries):
            c = (float(rng.uniform(lo_x, hi_x)), float(rng.uniform(lo_y, hi_y)))
            gap = min((math.dist(c, o) - (s + so) / 2 for o, so in zip(centres, sizes)), default=1.0)
            if gap > best_gap:
                best, best_gap = c, gap
            if gap >= 0:
                break
        centres.append(best)
    return centres


def random_object(rng: np.random.Generator, shapes=SHAPES, colours=tuple(COLOURS), size_range=(0.25, 0.45),
                  fill: Fill = "solid", max_rotation: float = 10.0) -> ObjectSpec:
    """An object with random kind, colour, size and a small rotation, centred (place it after)."""
    return ObjectSpec(
        shape=str(rng.choice(list(shapes))), colour=str(rng.choice(list(colours))),
        size=float(rng.uniform(*size_range)), rotation=float(rng.uniform(-max_rotation, max_rotation)), fill=fill,
    )


def random_scene(rng: np.random.Generator, count: int | None = None, fill: Fill = "solid",
                 size_range: tuple[float, float] = (0.25, 0.45)) -> Scene:
    """A scene of 1–3 random objects (different kinds allowed) on a random textured background."""
    n = int(rng.integers(1, 4)) if count is None else count
    bg_colour = str(rng.choice(list(BACKGROUND_COLOURS)))
    colours = tuple(c for c in COLOURS if c != bg_colour)
    objs = [random_object(rng, colours=colours, size_range=size_range, fill=fill) for _ in range(n)]
    centres = place_objects(rng, [o.size for o in objs])
    objs = [replace(o, center=c) for o, c in zip(objs, centres)]
    bg = Background(texture=str(rng.choice(list(TEXTURES))), colour=bg_colour)
    return Scene(objects=tuple(objs), background=bg)
