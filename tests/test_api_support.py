"""Shared pieces of the API/web tests (no tests here): a task with media inputs, PNG bytes, waits.

``MediaEchoTask`` (name ``test_media_echo``) is a second real task: it reads an uploaded image
(and an optional mask), inverts the image inside the mask and writes a PNG — enough to exercise
upload → job → output through the API and the web forms' media widgets.
"""

from __future__ import annotations

import io
import time
from typing import Literal

import numpy as np
from pydantic import Field

from studio.io.media import write_png
from studio.tasks.base import InputError, ModelKey, OutputFile, RunContext, Task, TaskInputs, TaskResult

EXTRA_TASKS = "tests.fixtures_tasks:GradientTask,tests.test_api_support:MediaEchoTask"


class MediaEchoInputs(TaskInputs):
    image: str = Field(..., description="Image to invert.", json_schema_extra={"media": "image"})
    mask: str | None = Field(None, description="Where to invert (white = invert).", json_schema_extra={"media": "mask"})
    strength: float = Field(1.0, ge=0.0, le=1.0, description="Blend of the inverted image.")
    mode: Literal["invert", "gray"] = Field("invert", description="What to do inside the mask.")
    tags: list[str] = Field(default_factory=list, description="Free labels.")


class MediaEchoTask(Task):
    name = "test_media_echo"
    title = "Test media echo"
    description = "Inverts an uploaded image inside a painted mask (API/web test task)."
    Inputs = MediaEchoInputs
    output_kinds = ("image",)

    def check(self, inputs: MediaEchoInputs) -> None:
        from pathlib import Path

        for name in ("image", "mask"):
            value = getattr(inputs, name)
            if value is not None and not Path(value).is_file():
                raise InputError(name, f"no such file: {value}")

    def load(self, key: ModelKey, device: str = "cpu", dtype: str = "float32"):
        return None

    def run(self, pipeline, inputs: MediaEchoInputs, ctx: RunContext) -> TaskResult:
        from PIL import Image

        image = np.asarray(Image.open(inputs.image).convert("RGB"), np.float32) / 255  # (H, W, 3)
        mask = np.ones(image.shape[:2], np.float32)
        if inputs.mask:
            mask = np.asarray(Image.open(inputs.mask).convert("L").resize(image.shape[1::-1]), np.float32) / 255
        target = 1 - image if inputs.mode == "invert" else image.mean(-1, keepdims=True).repeat(3, -1)
        out = image + inputs.strength * mask[..., None] * (target - image)
        ctx.step(0, 1, preview=out)
        path = write_png(ctx.path("echo.png"), (out * 255).round().astype(np.uint8), ctx.recipe)
        return TaskResult(files=[OutputFile(path, "image", "echo")], data={"mask_mean": float(mask.mean())})


def png_bytes(h: int = 16, w: int = 20, seed: int = 0) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def wav_bytes(n: int = 1600) -> bytes:
    import wave

    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(np.zeros(n, np.int16).tobytes())
    return buf.getvalue()


def wait_for(get, predicate, timeout: float = 30.0, interval: float = 0.05):
    """Poll ``get()`` until ``predicate(value)``; fail with the last value on timeout."""
    deadline = time.monotonic() + timeout
    value = get()
    while not predicate(value):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting; last value: {value}")
        time.sleep(interval)
        value = get()
    return value
