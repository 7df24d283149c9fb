"""Media writers that embed the job's recipe in the file, plus ``read_recipe`` to get it back.

Every writer writes to a temporary name in the target folder and renames it into place, so a
crash never leaves a half-written file under its real name. Each media file also gets a
``<file>.json`` sidecar holding the same recipe (the one place a recipe survives any tool that
strips metadata). Where each format keeps the recipe:

- PNG: a ``tEXt`` chunk ``studio_recipe`` (Pillow ``PngInfo``)
- MP4: the container ``comment`` tag (ffmpeg ``-metadata comment=...``)
- WAV: a ``LIST``/``INFO`` chunk with an ``ICMT`` (comment) entry
- GLB: ``scenes[0].extras.studio_recipe`` in the glTF JSON (trimesh scene metadata)
- MIDI: a text meta-event at time 0 starting with ``studio_recipe:`` (pretty_midi)
"""

from __future__ import annotations

import io
import json
import os
import struct
import wave
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from studio._fs import atomic_path

RECIPE_KEY = "studio_recipe"
SIDECAR_SUFFIX = ".json"


class RecipeNotFound(ValueError):
    """The file carries no Studio recipe (and has no sidecar)."""


# --------------------------------------------------------------------------------------------
# atomic writing


def _atomic_bytes(path: Path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def _recipe_text(recipe: dict[str, Any]) -> str:
    # ASCII-only and key-sorted: every container below accepts it, and equal recipes give equal bytes
    return json.dumps(recipe, sort_keys=True, ensure_ascii=True, separators=(",", ":"))


def sidecar_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path.with_name(path.name + SIDECAR_SUFFIX)


def _write_sidecar(path: Path, recipe: dict[str, Any]) -> None:
    write_json(sidecar_path(path), recipe)


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as pretty JSON atomically (no sidecar: JSON outputs are their own record)."""
    text = json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False, default=_json_default)
    return _atomic_bytes(Path(path), (text + "\n").encode("utf-8"))


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


# --------------------------------------------------------------------------------------------
# PNG


def _as_uint8_image(image: Any) -> np.ndarray:
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise ValueError(f"image must be uint8 HWC (or HW), got dtype {arr.dtype}")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise ValueError(f"image must be HxW, HxWx3 or HxWx4, got shape {arr.shape}")
    return np.ascontiguousarray(arr)


def write_png(path: str | os.PathLike, image_uint8_hwc: Any, recipe: dict[str, Any]) -> Path:
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    path = Path(path)
    info = PngInfo()
    info.add_text(RECIPE_KEY, _recipe_text(recipe))
    buf = io.BytesIO()
    Image.fromarray(_as_uint8_image(image_uint8_hwc)).save(buf, format="PNG", pnginfo=info)
    _atomic_bytes(path, buf.getvalue())
    _write_sidecar(path, recipe)
    return path


def _read_png(path: Path) -> dict[str, Any] | None:
    from PIL import Image

    with Image.open(path) as im:
        text = getattr(im, "text", {}) or im.info
        raw = text.get(RECIPE_KEY)
    return json.loads(raw) if raw else None


# --------------------------------------------------------------------------------------------
# GIF (animated previews; the recipe in the comment extension)


def write_gif(path: str | os.PathLike, frames_uint8_thwc: Any, fps: float, recipe: dict[str, Any]) -> Path:
    from PIL import Image

    path = Path(path)
    frames = [Image.fromarray(_as_uint8_image(f)) for f in np.asarray(frames_uint8_thwc)]
    if not frames or fps <= 0:
        raise ValueError(f"a GIF needs at least one frame and a positive fps, got {len(frames)} frames at {fps}")
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=int(round(1000 / fps)),
                   loop=0, comment=_recipe_text(recipe).encode("ascii"))
    _atomic_bytes(path, buf.getvalue())
    _write_sidecar(path, recipe)
    return path


def _read_gif(path: Path) -> dict[str, Any] | None:
    from PIL import Image

    with Image.open(path) as im:
        raw = im.info.get("comment")
    return json.loads(raw) if raw else None


# --------------------------------------------------------------------------------------------
# MP4 (H.264 through imageio-ffmpeg's bundled ffmpeg)


def write_mp4(path: str | os.PathLike, frames_uint8_thwc: Any, fps: float, recipe: dict[str, Any]) -> Path:
    import imageio.v2 as imageio

    path = Path(path)
    frames = np.asarray(frames_uint8_thwc)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] not in (1, 3):
        raise ValueError(f"frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    with atomic_path(path) as tmp:
        # yuv420p + even sizes: the H.264 profile browsers play; bitexact: no encoder version string
        writer = imageio.get_writer(
            tmp, format="FFMPEG", mode="I", fps=fps, codec="libx264", macro_block_size=2,
            pixelformat="yuv420p", ffmpeg_log_level="error",
            output_params=["-metadata", f"comment={_recipe_text(recipe)}", "-fflags", "+bitexact",
                           "-movflags", "+faststart"],
        )
        try:
            for frame in frames:
                writer.append_data(frame)
        finally:
            writer.close()
    _write_sidecar(path, recipe)
    return path


def _read_mp4(path: Path) -> dict[str, Any] | None:
    import subprocess

    import imageio_ffmpeg

    out = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(path), "-f", "ffmetadata", "-"],
        capture_output=True, check=True,
    ).stdout.decode("utf-8", "replace")
    for line in _ffmetadata_lines(out):
        key, sep, value = line.partition("=")
        if sep and key.strip().lower() == "comment":
            value = _ffmetadata_unescape(value)
            try:
                return json.loads(value)
            except json.JSONDecodeError:
                return None
    return None


def _ffmetadata_lines(text: str) -> list[str]:
    # a backslash before a newline continues the value on the next line
    lines, current = [], ""
    for raw in text.split("\n"):
        if raw.endswith("\\") and not raw.endswith("\\\\"):
            current += raw[:-1] + "\n"
            continue
        lines.append(current + raw)
        current = ""
    return lines


def _ffmetadata_unescape(value: str) -> str:
    out, i = [], 0
    while i < len(value):
        if value[i] == "\\" and i + 1 < len(value):
            out.append(value[i + 1])
            i += 2
        else:
            out.append(value[i])
            i += 1
    return "".join(out)


# --------------------------------------------------------------------------------------------
# WAV (16-bit PCM + LIST/INFO)


def write_wav(path: str | os.PathLike, audio_float: Any, sample_rate: int, recipe: dict[str, Any]) -> Path:
    path = Path(path)
    audio = np.asarray(audio_float, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[:, None]  # (N, 1)
    if audio.ndim != 2:
        raise ValueError(f"audio must be (N,) or (N, channels), got shape {audio.shape}")
    if not np.all(np.isfinite(audio)):
        raise ValueError("audio contains NaN or inf")
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    pcm = (np.clip(audio, -1.0, 1.0) * 32767.0).round().astype("<i2")  # (N, C)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(pcm.shape[1])
        w.setsampwidth(2)
        w.setframerate(int(sample_rate))
        w.writeframes(pcm.tobytes())
    data = _append_info_chunk(buf.getvalue(), {"ICMT": _recipe_text(recipe), "ISFT": "studio"})
    _atomic_bytes(path, data)
    _write_sidecar(path, recipe)
    return path


def _append_info_chunk(riff: bytes, entries: dict[str, str]) -> bytes:
    body = b"INFO"
    for key, value in entries.items():
        payload = value.encode("ascii") + b"\x00"
        body += key.encode("ascii") + struct.pack("<I", len(payload)) + payload
        if len(payload) % 2:
            body += b"\x00"  # RIFF chunks are word-aligned
    chunk = b"LIST" + struct.pack("<I", len(body)) + body
    out = riff + chunk
    return out[:4] + struct.pack("<I", len(out) - 8) + out[8:]


def _riff_chunks(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError("not a RIFF/WAVE file")
    pos = 12
    while pos + 8 <= len(data):
        cid, size = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        yield cid, data[pos + 8:pos + 8 + size]
        pos += 8 + size + (size % 2)


def _read_wav(path: Path) -> dict[str, Any] | None:
    for cid, body in _riff_chunks(path.read_bytes()):
        if cid != b"LIST" or body[:4] != b"INFO":
            continue
        pos = 4
        while pos + 8 <= len(body):
            key, size = body[pos:pos + 4], struct.unpack("<I", body[pos + 4:pos + 8])[0]
            value = body[pos + 8:pos + 8 + size].rstrip(b"\x00")
            if key == b"ICMT":
                try:
                    return json.loads(value.decode("ascii"))
                except (UnicodeDecodeError, json.JSONDecodeError):
                    return None
            pos += 8 + size + (size % 2)
    return None


def read_wav(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Read a 16-bit PCM WAV as float32 (N, channels) in [-1, 1] and its sample rate."""
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2:
            raise ValueError(f"{path}: only 16-bit PCM WAV is supported, got {8 * w.getsampwidth()}-bit")
        frames = w.readframes(w.getnframes())
        audio = np.frombuffer(frames, dtype="<i2").reshape(-1, w.getnchannels())  # (N, C)
        return audio.astype(np.float32) / 32767.0, w.getframerate()


# --------------------------------------------------------------------------------------------
# GLB (glTF binary through trimesh)


def write_glb(path: str | os.PathLike, trimesh_obj: Any, recipe: dict[str, Any]) -> Path:
    import trimesh

    path = Path(path)
    scene = trimesh_obj if isinstance(trimesh_obj, trimesh.Scene) else trimesh.Scene(trimesh_obj)
    scene = scene.copy()  # the caller's object keeps its own metadata
    scene.metadata[RECIPE_KEY] = json.loads(_recipe_text(recipe))
    data = trimesh.exchange.gltf.export_glb(scene, include_normals=True)
    _atomic_bytes(path, data)
    _write_sidecar(path, recipe)
    return path


def _glb_json(path: Path) -> dict[str, Any]:
    data = path.read_bytes()
    if data[:4] != b"glTF" or len(data) < 20:
        raise ValueError("not a GLB file")
    length, ctype = struct.unpack("<II", data[12:20])
    if ctype != 0x4E4F534A:  # "JSON"
        raise ValueError("GLB first chunk is not JSON")
    return json.loads(data[20:20 + length].decode("utf-8"))


def _read_glb(path: Path) -> dict[str, Any] | None:
    tree = _glb_json(path)
    for scene in tree.get("scenes", []):
        recipe = (scene.get("extras") or {}).get(RECIPE_KEY)
        if recipe:
            return recipe
    return (tree.get("extras") or {}).get(RECIPE_KEY)


# --------------------------------------------------------------------------------------------
# MIDI (pretty_midi text meta-event)


def write_midi(path: str | os.PathLike, pretty_midi_obj: Any, recipe: dict[str, Any]) -> Path:
    import pretty_midi

    path = Path(path)
    # MIDI files are written by mido from the object; a copy keeps the caller's text events intact
    pm = pretty_midi.PrettyMIDI(io.BytesIO(_midi_bytes(pretty_midi_obj)))
    pm.text_events = [t for t in pm.text_events if not t.text.startswith(RECIPE_KEY + ":")]
    pm.text_events.insert(0, pretty_midi.Text(f"{RECIPE_KEY}:{_recipe_text(recipe)}", 0.0))
    _atomic_bytes(path, _midi_bytes(pm))
    _write_sidecar(path, recipe)
    return path


def _midi_bytes(pm: Any) -> bytes:
    buf = io.BytesIO()
    pm.write(buf)
    return buf.getvalue()


def _read_midi(path: Path) -> dict[str, Any] | None:
    import pretty_midi

    pm = pretty_midi.PrettyMIDI(str(path))
    for event in pm.text_events:
        if event.text.startswith(RECIPE_KEY + ":"):
            return json.loads(event.text[len(RECIPE_KEY) + 1:])
    return None


# --------------------------------------------------------------------------------------------
# reading back

_READERS = {
    ".png": _read_png,
    ".gif": _read_gif,
    ".mp4": _read_mp4,
    ".wav": _read_wav,
    ".glb": _read_glb,
    ".mid": _read_midi,
    ".midi": _read_midi,
}


def read_recipe(path: str | os.PathLike) -> dict[str, Any]:
    """The recipe a Studio output carries: from the file's own metadata, else its JSON sidecar.

    A ``.json`` sidecar itself may be passed too. Raises ``RecipeNotFound`` when neither has one.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.suffix.lower() == SIDECAR_SUFFIX and path.name.count(".") >= 2:
        return _validated(json.loads(path.read_text("utf-8")), path)
    reader = _READERS.get(path.suffix.lower())
    recipe = None
    if reader is not None:
        try:
            recipe = reader(path)
        except Exception:  # unreadable metadata: fall back to the sidecar below
            recipe = None
    if recipe is None and sidecar_path(path).exists():
        recipe = json.loads(sidecar_path(path).read_text("utf-8"))
    if recipe is None:
        raise RecipeNotFound(f"{path}: carries no Studio recipe and has no {SIDECAR_SUFFIX} sidecar")
    return _validated(recipe, path)


def _validated(recipe: Any, path: Path) -> dict[str, Any]:
    if not isinstance(recipe, dict) or "task" not in recipe or "inputs" not in recipe:
        raise RecipeNotFound(f"{path}: metadata found but it is not a Studio recipe (needs 'task' and 'inputs')")
    return recipe
