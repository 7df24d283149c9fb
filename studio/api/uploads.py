"""Media uploads: size limit, content sniffing, atomic write → a server-side path for a task input.

The media type is decided from the file's first bytes, not from the name or the client's
Content-Type (both are the client's claim). Images are also decoded once, so a truncated or
corrupt image is refused here instead of failing inside a worker.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator

MEDIA_KINDS = ("image", "mask", "video", "audio", "midi", "mesh")
# which sniffed family a task field's media kind accepts
ACCEPTS = {"image": "image", "mask": "image", "video": "video", "audio": "audio", "midi": "midi", "mesh": "mesh"}
SNIFF_BYTES = 64


@dataclass(frozen=True)
class UploadLimits:
    max_bytes: int = 100 * 2**20  # 100 MiB: a minute of 1080p H.264 fits; a disk-filling POST does not
    max_image_pixels: int = 64 * 2**20  # decompression-bomb guard for images


@dataclass(frozen=True)
class StoredUpload:
    path: Path
    media: str  # sniffed family: image | video | audio | midi | mesh
    size: int
    sha256: str
    filename: str


class UploadRejected(ValueError):
    """A refused upload; ``status`` is the HTTP status to answer with, ``field`` the form field."""

    def __init__(self, status: int, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.status = status
        self.field = field
        self.message = message


def sniff(head: bytes, filename: str = "") -> tuple[str, str] | None:
    """(family, extension) from a file's first bytes, or None when it is no media we take."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image", ".png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image", ".jpg"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image", ".gif"
    if head.startswith(b"BM") and len(head) >= 14:
        return "image", ".bmp"
    if head.startswith(b"RIFF") and len(head) >= 12:
        return {b"WEBP": ("image", ".webp"), b"WAVE": ("audio", ".wav"), b"AVI ": ("video", ".avi")}.get(head[8:12])
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        return ("audio", ".m4a") if brand in (b"M4A ", b"M4B ") else ("video", ".mp4")
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "video", ".webm"
    if head.startswith(b"fLaC"):
        return "audio", ".flac"
    if head.startswith(b"OggS"):
        return "audio", ".ogg"
    if head.startswith(b"ID3") or head[:2] in (b"\xff\xfb", b"\xff\xf3", b"\xff\xf2"):
        return "audio", ".mp3"
    if head.startswith(b"MThd"):
        return "midi", ".mid"
    if head.startswith(b"glTF"):
        return "mesh", ".glb"
    if head.startswith(b"ply\n") or head.startswith(b"ply\r\n"):
        return "mesh", ".ply"
    return _sniff_text_mesh(head, filename)


def _sniff_text_mesh(head: bytes, filename: str) -> tuple[str, str] | None:
    """OBJ and STL have no magic number: trust the extension only when the bytes agree."""
    ext = Path(filename).suffix.lower()
    if ext == ".obj":
        try:
            first = head.decode("ascii").lstrip().split(None, 1)[0] if head.strip() else ""
        except UnicodeDecodeError:
            return None
        return ("mesh", ".obj") if first in {"#", "v", "vn", "vt", "f", "o", "g", "mtllib", "usemtl", "s"} else None
    if ext == ".stl":
        return "mesh", ".stl"  # binary STL has an arbitrary 80-byte header; trimesh validates it on load
    return None


def safe_name(filename: str, ext: str) -> str:
    """The client's base name reduced to a harmless one, with the sniffed extension."""
    stem = Path(filename.replace("\\", "/")).name.rsplit(".", 1)[0]
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._")[:80] or "upload"
    return stem + ext


class UploadStore:
    """Writes accepted uploads to ``root/<uuid>/<name>`` (temp name, then rename)."""

    def __init__(self, root: Path, limits: UploadLimits = UploadLimits()):
        self.root = Path(root)
        self.limits = limits

    async def save_stream(self, chunks: AsyncIterator[bytes], filename: str, expected: str | None) -> StoredUpload:
        self._check_expected(expected)
        tmp = self._tmp_path()
        try:
            size, digest, head = 0, hashlib.sha256(), b""
            with open(tmp, "wb") as f:
                async for chunk in chunks:
                    size, head = self._account(size, head, chunk)
                    digest.update(chunk)
                    f.write(chunk)
            return self._finish(tmp, head, size, digest.hexdigest(), filename, expected)
        finally:
            tmp.unlink(missing_ok=True)

    def save_file(self, src: str | os.PathLike, expected: str | None, filename: str | None = None) -> StoredUpload:
        """Same checks for a file already on this machine (the web app's widget uploads)."""
        self._check_expected(expected)
        src = Path(src)
        tmp = self._tmp_path()
        try:
            size, digest, head = 0, hashlib.sha256(), b""
            with open(src, "rb") as r, open(tmp, "wb") as w:
                for chunk in iter(lambda: r.read(1 << 20), b""):
                    size, head = self._account(size, head, chunk)
                    digest.update(chunk)
                    w.write(chunk)
            return self._finish(tmp, head, size, digest.hexdigest(), filename or src.name, expected)
        finally:
            tmp.unlink(missing_ok=True)

    def contains(self, path: str | os.PathLike) -> bool:
        return Path(path).resolve().is_relative_to(self.root.resolve())

    # -- steps ------------------------------------------------------------------------------------

    def _check_expected(self, expected: str | None) -> None:
        if expected is not None and expected not in MEDIA_KINDS:
            raise UploadRejected(422, "media", f"unknown media kind {expected!r}; one of {', '.join(MEDIA_KINDS)}")

    def _tmp_path(self) -> Path:
        staging = self.root / ".partial"
        staging.mkdir(parents=True, exist_ok=True)
        return staging / uuid.uuid4().hex

    def _account(self, size: int, head: bytes, chunk: bytes) -> tuple[int, bytes]:
        size += len(chunk)
        if size > self.limits.max_bytes:
            raise UploadRejected(413, "file", f"larger than the {self.limits.max_bytes} byte upload limit")
        if len(head) < SNIFF_BYTES:
            head = (head + chunk)[:SNIFF_BYTES]
        return size, head

    def _finish(self, tmp: Path, head: bytes, size: int, sha: str, filename: str, expected: str | None) -> StoredUpload:
        if size == 0:
            raise UploadRejected(422, "file", "empty file")
        found = sniff(head, filename)
        if found is None:
            raise UploadRejected(415, "file", f"{filename!r} is not a supported image, video, audio, MIDI or mesh file")
        family, ext = found
        if expected is not None and ACCEPTS[expected] != family:
            raise UploadRejected(415, "file", f"expected {expected} media, got {family} ({ext})")
        if family == "image":
            self._verify_image(tmp)
        final_dir = self.root / uuid.uuid4().hex
        final_dir.mkdir(parents=True)
        final = final_dir / safe_name(filename, ext)
        os.replace(tmp, final)  # atomic: a reader never sees a half-written upload
        return StoredUpload(final.resolve(), family, size, sha, final.name)

    def _verify_image(self, path: Path) -> None:
        from PIL import Image

        try:
            with Image.open(path) as im:
                if im.width * im.height > self.limits.max_image_pixels:
                    raise UploadRejected(413, "file", f"image of {im.width}x{im.height} pixels exceeds the limit")
                im.load()  # full decode: truncated data fails here, not in a worker
        except UploadRejected:
            raise
        except Exception as exc:
            raise UploadRejected(422, "file", f"corrupt image: {exc}") from None
