"""A small real task for the job system's tests (and the API/web tests): ``test_gradient``.

It renders a colour gradient over ``steps`` steps, adding seed-dependent noise each step, reports
progress with a preview every step, and writes a PNG with its recipe. Knobs make the hard cases
real: ``sleep`` per step (a long job to cancel or kill), ``stall_s`` (a step that ignores the cancel
token, so the grace-period kill must happen), ``fail_at`` (an exception at that step). The model
name picks a "checkpoint": loading counts per process, and ``-slow`` models take 0.3 s to load.

Worker processes find it through ``STUDIO_EXTRA_TASKS=tests.fixtures_tasks:GradientTask``.
"""

from __future__ import annotations

import os
import time
from typing import Literal

import numpy as np
from pydantic import Field

from studio.io.media import write_png
from studio.tasks.base import InputError, ModelKey, OutputFile, RunContext, Task, TaskInputs, TaskResult

LOADS: dict[str, int] = {}  # model name -> loads in this process

COLOURS = {"red": (1.0, 0.2, 0.1), "green": (0.1, 1.0, 0.3), "blue": (0.2, 0.3, 1.0)}


class GradientInputs(TaskInputs):
    width: int = Field(32, ge=8, le=512, description="Image width in pixels.")
    height: int = Field(24, ge=8, le=512, description="Image height in pixels.")
    steps: int = Field(4, ge=1, le=1000, description="Number of refinement steps.")
    colour: Literal["red", "green", "blue"] = Field("blue", description="Gradient colour.")
    sleep: float = Field(0.0, ge=0.0, le=10.0, description="Seconds to sleep per step.")
    stall_s: float = Field(0.0, ge=0.0, le=60.0, description="Seconds step 0 blocks without checking cancel.")
    fail_at: int | None = Field(None, ge=0, description="Raise an error at this step.")
    model: str = Field("gradient-a", description="Model name (loads are counted per process).")


class GradientPipeline:
    def __init__(self, model: str):
        self.model = model
        self.pid = os.getpid()
        LOADS[model] = LOADS.get(model, 0) + 1
        self.load_number = LOADS[model]
        self.palette = np.linspace(0.0, 1.0, 256, dtype=np.float32)

    def nbytes(self) -> int:
        return 1 << 20


class GradientTask(Task):
    name = "test_gradient"
    title = "Test gradient"
    description = "Renders a seed-dependent gradient over N steps (job-system test task)."
    Inputs = GradientInputs
    output_kinds = ("image",)
    default_model = "gradient-a"

    def check(self, inputs: GradientInputs) -> None:
        if inputs.fail_at is not None and inputs.fail_at >= inputs.steps:
            raise InputError("fail_at", f"must be below steps ({inputs.steps}), got {inputs.fail_at}")

    def load(self, key: ModelKey, device: str = "cpu", dtype: str = "float32") -> GradientPipeline:
        if key.model and key.model.endswith("-slow"):
            time.sleep(0.3)
        return GradientPipeline(key.model or self.default_model)

    def run(self, pipeline: GradientPipeline, inputs: GradientInputs, ctx: RunContext) -> TaskResult:
        rng = np.random.default_rng(ctx.seed)
        h, w = inputs.height, inputs.width
        ramp = np.linspace(0.0, 1.0, w, dtype=np.float32)[None, :, None] * np.ones((h, 1, 1), np.float32)  # (H, W, 1)
        image = ramp * np.asarray(COLOURS[inputs.colour], np.float32)  # (H, W, 3)
        for i in range(inputs.steps):
            if i == 0 and inputs.stall_s:
                time.sleep(inputs.stall_s)  # deliberately deaf to the cancel token
            if inputs.fail_at == i:
                raise RuntimeError(f"gradient failed at step {i} as asked")
            image = np.clip(image + rng.normal(0.0, 0.04, size=image.shape).astype(np.float32), 0.0, 1.0)
            if inputs.sleep:
                time.sleep(inputs.sleep)
            ctx.step(i, inputs.steps, preview=image)
        pixels = (image * 255).round().astype(np.uint8)
        path = write_png(ctx.path("gradient.png"), pixels, ctx.recipe)
        return TaskResult(
            files=[OutputFile(path, "image", "gradient")],
            data={"mean": float(pixels.mean()), "load_number": pipeline.load_number, "pid": pipeline.pid},
        )
