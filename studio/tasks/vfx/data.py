"""Open-VFX-mini: procedural effect clips with exact annotations, and the Open-VFX folder loader.

A clip is a reference scene (1–3 shaded objects on a textured background, drawn by
``studio.data.shapes``) in which one object undergoes an effect between a start and an end frame
while everything else stays still. Each clip carries its prompt, effect, per-frame instance mask
of the target, the masks of the other objects, and its start/end frames (seconds = frame / fps).
Frame 0 is the reference image; the object is untouched up to the start frame and frozen in its
final state from the end frame on.

The same ``Clip`` comes out of ``OpenVfxFolder`` for real data in the Open-VFX layout (videos + a
JSON list of ``{path, text, start, end, mask}``), so training code never knows which it got.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from studio.data.shapes import Background, Scene, draw_scene, random_scene
from studio.tasks.vfx.effects import EFFECTS, MOTIONS, Effect, Layer

FPS = 8


@dataclass(frozen=True)
class ClipConfig:
    """How clips are drawn; saved as the dataset recipe (``datasets/vfx/open_vfx_mini.toml``)."""

    size: int = 32
    frames: int = 16
    fps: int = FPS
    min_duration: int = 4  # frames the effect lasts at least
    supersample: int = 4

    def __post_init__(self) -> None:
        if self.size < 16:
            raise ValueError(f"size: {self.size} is too small (minimum 16 px)")
        if self.frames < self.min_duration + 2:
            raise ValueError(f"frames: {self.frames} leaves no still frames around a {self.min_duration}-frame effect")


@dataclass
class Clip:
    frames: np.ndarray  # (T, H, W, 3) uint8; frames[0] is the reference image
    mask: np.ndarray  # (T, H, W) bool, the target instance in every frame
    others: np.ndarray  # (H, W) bool, the other objects (static)
    effect: str
    prompt: str
    start: int  # first frame of the effect (progress 0)
    end: int  # frame where the effect completes (progress 1)
    fps: int = FPS

    @property
    def start_s(self) -> float:
        return self.start / self.fps

    @property
    def end_s(self) -> float:
        return self.end / self.fps

    @property
    def reference(self) -> np.ndarray:
        return self.frames[0]


# --- drawing ---------------------------------------------------------------------------------


def object_layers(scene: Scene, size: int, supersample: int) -> tuple[np.ndarray, list[Layer]]:
    """The background (H, W, 3) float in [0, 1] and one soft-edged layer per object."""
    bg, _ = draw_scene(Scene((), scene.background), size, supersample)
    side = size * supersample
    layers = []
    for obj in scene.objects:
        # draw alone at full resolution, then area-downsample premultiplied colour and coverage
        img, masks = draw_scene(Scene((obj,), Background("plain", "gray")), side, 1)
        cover = masks[0].astype(np.float32)
        premul = img.astype(np.float32) / 255.0 * cover[..., None]
        premul = cv2.resize(premul, (size, size), interpolation=cv2.INTER_AREA)
        alpha = cv2.resize(cover, (size, size), interpolation=cv2.INTER_AREA)
        rgb = premul / np.maximum(alpha[..., None], 1e-6) * _light(alpha)
        layers.append(Layer(np.clip(rgb, 0, 1).astype(np.float32), alpha.astype(np.float32)))
    return bg.astype(np.float32) / 255.0, layers


def _light(alpha: np.ndarray) -> np.ndarray:
    """A strong diagonal light across the object's box, (H, W, 1): without it a spinning circle
    would be invisible (the shared drawing layer's shading is too soft at 32 px)."""
    ys, xs = np.nonzero(alpha > 0.5)
    if len(ys) == 0:
        return np.ones((*alpha.shape, 1), np.float32)
    yy, xx = np.mgrid[: alpha.shape[0], : alpha.shape[1]].astype(np.float32)
    t = ((xx - xs.min()) / max(np.ptp(xs), 1) + (yy - ys.min()) / max(np.ptp(ys), 1)) / 2
    return (1.25 - 0.7 * np.clip(t, 0, 1))[..., None].astype(np.float32)


def composite(bg: np.ndarray, layers: list[Layer]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Paint layers in order over ``bg``; returns the uint8 frame and each layer's visible mask."""
    img = bg.copy()
    visible = []
    for layer in layers:
        a = layer.alpha[..., None]
        img = img * (1 - a) + layer.rgb * a
        on = layer.alpha > 0.25  # fading fragments still count as the object
        visible = [v & ~on for v in visible] + [on]
    return np.clip(np.round(img * 255), 0, 255).astype(np.uint8), visible


def progress(t: int, start: int, end: int) -> float:
    """Effect progress at frame ``t``: 0 up to ``start``, linear, 1 from ``end`` on."""
    return float(np.clip((t - start) / max(end - start, 1), 0.0, 1.0))


def sample_interval(rng: np.random.Generator, cfg: ClipConfig) -> tuple[int, int]:
    start = int(rng.integers(1, cfg.frames - cfg.min_duration))
    end = int(rng.integers(start + cfg.min_duration, cfg.frames))
    return start, end


def render_clip(rng: np.random.Generator, effect: Effect, cfg: ClipConfig = ClipConfig(),
                scene: Scene | None = None, target: int | None = None,
                interval: tuple[int, int] | None = None) -> Clip:
    """One annotated clip of ``effect`` applied to one object of a (random) scene."""
    scene = scene or random_scene(rng, fill="shaded")
    target = int(rng.integers(len(scene.objects))) if target is None else target
    start, end = interval or sample_interval(rng, cfg)
    bg, layers = object_layers(scene, cfg.size, cfg.supersample)
    params = effect.params(rng, layers[target])
    frames, masks = [], []
    others = np.zeros((cfg.size, cfg.size), bool)
    cache: dict[float, tuple[np.ndarray, np.ndarray]] = {}
    for t in range(cfg.frames):
        p = progress(t, start, end)
        if p not in cache:  # still frames repeat exactly
            moved = layers[:target] + [effect.render(layers[target], p, params)] + layers[target + 1 :]
            img, visible = composite(bg, moved)
            cache[p] = (img, visible[target])
            if p == 0.0:
                others = np.any([v for i, v in enumerate(visible) if i != target], axis=0) if len(visible) > 1 else others
        frames.append(cache[p][0])
        masks.append(cache[p][1])
    obj = scene.objects[target]
    prompt = f"the {obj.colour} {obj.shape} {effect.verb}"
    return Clip(np.stack(frames), np.stack(masks), others, effect.name, prompt, start, end, cfg.fps)


def clip_for(index: int, seed: int, names: tuple[str, ...], cfg: ClipConfig = ClipConfig(),
             table: dict[str, Effect] | None = None) -> Clip:
    """The deterministic clip number ``index`` of a dataset: effects cycle, the rest is seeded."""
    table = table or {**EFFECTS, **MOTIONS}
    rng = np.random.default_rng([seed, index])
    return render_clip(rng, table[names[index % len(names)]], cfg)


# --- the Open-VFX folder format --------------------------------------------------------------


class OpenVfxFolder:
    """Real data in the Open-VFX layout: ``annotations.json`` = a list of
    ``{"path": video, "text": prompt, "start": s, "end": s, "mask": image or video, "effect"?: name}``
    (paths relative to the folder, times in seconds). Clips are resized (short side) and
    centre-cropped to ``cfg.size`` and resampled to ``cfg.fps``, first ``cfg.frames`` frames."""

    def __init__(self, root: str | Path, cfg: ClipConfig = ClipConfig()):
        self.root = Path(root)
        self.cfg = cfg
        index = self.root / "annotations.json"
        if not index.is_file():
            raise FileNotFoundError(f"{index}: no annotations.json in the Open-VFX folder")
        self.items: list[dict[str, Any]] = json.loads(index.read_text())
        for i, item in enumerate(self.items):
            missing = {"path", "text", "start", "end", "mask"} - set(item)
            if missing:
                raise ValueError(f"annotations.json[{i}]: missing {', '.join(sorted(missing))}")

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> Clip:
        item = self.items[i]
        frames, src_fps = read_video(self.root / item["path"])
        frames = resample(frames, src_fps, self.cfg.fps)[: self.cfg.frames]
        frames = np.stack([fit_square(f, self.cfg.size) for f in frames])
        mask = read_mask_video(self.root / item["mask"], len(frames), self.cfg.size)
        start = int(round(float(item["start"]) * self.cfg.fps))
        end = int(round(float(item["end"]) * self.cfg.fps))
        effect = item.get("effect") or effect_from_text(item["text"])
        others = np.zeros(frames.shape[1:3], bool)
        return Clip(frames, mask, others, effect, item["text"], start, end, self.cfg.fps)


def effect_from_text(text: str) -> str:
    low = text.lower()
    for name, e in EFFECTS.items():
        if name in low or e.verb.split()[0] in low:
            return name
    return "unknown"


def read_video(path: Path) -> tuple[np.ndarray, float]:
    import imageio.v3 as iio

    frames = iio.imread(path)  # (T, H, W, 3)
    try:
        fps = float(iio.immeta(path).get("fps", FPS))
    except Exception:
        fps = float(FPS)
    return np.asarray(frames)[..., :3], fps


def resample(frames: np.ndarray, src_fps: float, fps: float) -> np.ndarray:
    n = max(1, int(round(len(frames) * fps / src_fps)))
    idx = np.minimum(np.round(np.arange(n) * src_fps / fps).astype(int), len(frames) - 1)
    return frames[idx]


def fit_square(img: np.ndarray, size: int, interpolation: int = cv2.INTER_AREA) -> np.ndarray:
    """Resize the short side to ``size`` and centre-crop: the documented handling of any image size."""
    h, w = img.shape[:2]
    k = size / min(h, w)
    nh, nw = max(size, round(h * k)), max(size, round(w * k))
    out = cv2.resize(img, (nw, nh), interpolation=interpolation)
    y, x = (nh - size) // 2, (nw - size) // 2
    return out[y : y + size, x : x + size]


def read_mask_video(path: Path, frames: int, size: int) -> np.ndarray:
    """A mask image (repeated over time) or a mask video → (T, size, size) bool."""
    if path.suffix.lower() in {".png", ".jpg", ".jpeg", ".bmp", ".webp"}:
        m = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if m is None:
            raise ValueError(f"mask: cannot read {path}")
        m = fit_square(m, size, cv2.INTER_NEAREST) > 127
        return np.repeat(m[None], frames, 0)
    video, _ = read_video(path)
    video = video[:frames]
    ms = np.stack([fit_square(f.mean(-1).astype(np.uint8), size, cv2.INTER_NEAREST) > 127 for f in video])
    if len(ms) < frames:
        ms = np.concatenate([ms, np.repeat(ms[-1:], frames - len(ms), 0)])
    return ms


def export_open_vfx(clips: list[Clip], root: str | Path) -> Path:
    """Write clips in the Open-VFX layout (MP4 + PNG mask of the first frame + annotations.json)."""
    import imageio.v3 as iio

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    items = []
    for i, c in enumerate(clips):
        vid, mask = f"videos/{i:04d}_{c.effect}.mp4", f"masks/{i:04d}_{c.effect}.mp4"
        for sub in ("videos", "masks"):
            (root / sub).mkdir(exist_ok=True)
        iio.imwrite(root / vid, c.frames, fps=c.fps, codec="libx264", macro_block_size=1,
                    ffmpeg_params=["-crf", "12"])
        mvid = np.repeat((c.mask[..., None] * 255).astype(np.uint8), 3, -1)
        iio.imwrite(root / mask, mvid, fps=c.fps, codec="libx264", macro_block_size=1,
                    ffmpeg_params=["-crf", "0"])
        items.append({"path": vid, "text": c.prompt, "start": c.start_s, "end": c.end_s, "mask": mask,
                      "effect": c.effect})
    (root / "annotations.json").write_text(json.dumps(items, indent=1))
    return root


# --- torch side ------------------------------------------------------------------------------


class ClipDataset:
    """``n`` deterministic clips of the named effects/motions, rendered once and kept in memory
    (8 ms each at 32 px); items are what ``objective.make_cond`` reads."""

    def __init__(self, names: tuple[str, ...], n: int, seed: int, cfg: ClipConfig = ClipConfig()):
        unknown = [x for x in names if x not in EFFECTS and x not in MOTIONS]
        if unknown:
            raise ValueError(f"effects: unknown {', '.join(unknown)}")
        self.names, self.cfg = tuple(names), cfg
        self.clips = [clip_for(i, seed, self.names, cfg) for i in range(n)]

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return training_item(self.clips[i])


class FolderClipDataset:
    """An Open-VFX folder (``OpenVfxFolder``) as training items — the same dicts as ``ClipDataset``,
    so real data trains the same way; decoded once and kept in memory."""

    def __init__(self, root: str | Path, cfg: ClipConfig = ClipConfig()):
        folder = OpenVfxFolder(root, cfg)
        self.cfg = cfg
        self.clips = [folder[i] for i in range(len(folder))]
        for i, c in enumerate(self.clips):
            if len(c.frames) < cfg.frames:
                raise ValueError(f"annotations.json[{i}]: {folder.items[i]['path']} has {len(c.frames)} frames at "
                                 f"{cfg.fps} fps; training needs {cfg.frames}")
        self.names = tuple(sorted({c.effect for c in self.clips}))

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return training_item(self.clips[i])


def training_item(c: Clip) -> dict[str, Any]:
    """What ``objective.make_cond`` reads from one clip (the effect by name: an adapter with an effect label maps
    it to its own vocabulary, ``controls.EffectEmbed``)."""
    import torch

    return {"frames": torch.from_numpy(c.frames), "ref_mask": torch.from_numpy(c.mask[0]),
            "start_s": c.start_s, "end_s": c.end_s, "prompt": c.prompt, "effect_name": c.effect}
