"""The ``image`` task: text → image with the shipped LiT (or its DiT teacher), adapters stacked by weight."""

from __future__ import annotations

import json
from typing import Literal

import torch
from pydantic import Field

from studio.tasks.base import InputError, ModelKey, OutputFile, RunContext, Task, TaskInputs, TaskResult, parse_adapter

MODELS = ("image-lit", "image-dit")
MAX_PROMPT_CHARS = 300
MAX_PIXELS_FACTOR = 8  # generate up to 8× the training side (LiT's linear cost makes large sizes cheap)


class ImageInputs(TaskInputs):
    prompt: str = Field(..., min_length=1, max_length=MAX_PROMPT_CHARS, description="What to draw, e.g. 'two small red triangles on a striped blue background'.")
    negative_prompt: str = Field("", max_length=MAX_PROMPT_CHARS, description="What to steer away from (the unconditional branch of guidance).")
    model: Literal["image-lit", "image-dit"] = Field("image-lit", description="image-lit (linear attention, fast) or image-dit (its softmax teacher).")
    size: int = Field(32, ge=8, le=1024, description="Image side in pixels; a multiple of the model's patch size.")
    steps: int = Field(20, ge=1, le=200, description="Denoising steps.")
    guidance: float = Field(3.0, ge=1.0, le=20.0, description="Classifier-free guidance scale (1 = off).")
    sampler: Literal["dpm++", "ddim", "euler", "ddpm"] = Field("dpm++", description="Diffusers sampler.")
    num: int = Field(4, ge=1, le=16, description="Number of images.")
    adapters: list[str] = Field(default_factory=list, description='LoRA adapters as "name:weight", stacked.')


def _model_config(name: str) -> dict:
    from studio.paths import model_path

    path = model_path(name) / "config.json"
    if not path.exists():
        raise InputError("model", f"model {name!r} is not installed (no {path})")
    return json.loads(path.read_text())


class ImageTask(Task):
    name = "image"
    title = "Text to image (LiT)"
    description = "Linear diffusion transformer inherited from a DiT and distilled (LiT), trained on procedural shapes."
    Inputs = ImageInputs
    output_kinds = ("image",)
    default_model = "image-lit"

    def check(self, inputs: ImageInputs) -> None:
        if not inputs.prompt.strip():
            raise InputError("prompt", "is empty")
        cfg = _model_config(inputs.model)
        patch, side = int(cfg["patch_size"]), int(cfg["sample_size"])
        if inputs.size % patch:
            raise InputError("size", f"{inputs.size} is not a multiple of the patch size {patch} of {inputs.model}")
        if not 2 * patch <= inputs.size <= MAX_PIXELS_FACTOR * side:
            raise InputError("size", f"{inputs.size} is outside {inputs.model}'s range {2 * patch}..{MAX_PIXELS_FACTOR * side}")
        if inputs.num * (inputs.size / side) ** 2 > 64:
            raise InputError("num", f"{inputs.num} images of {inputs.size} px is too much work for one job")
        for spec in inputs.adapters:
            self._check_adapter(spec, inputs.model)

    @staticmethod
    def _check_adapter(spec: str, model: str) -> None:
        from studio.lora import AdapterNotFound, read_metadata, resolve_adapter_dir

        name, weight = parse_adapter(spec)
        if not -4.0 <= weight <= 4.0:
            raise InputError("adapters", f"weight {weight} of {name!r} is outside -4..4")
        try:
            folder = resolve_adapter_dir(name)
        except (AdapterNotFound, FileNotFoundError):
            raise InputError("adapters", f"unknown adapter {name!r}") from None
        base = read_metadata(folder).get("base_model_id", "")
        if base and base != model:
            raise InputError("adapters", f"adapter {name!r} was trained for {base!r}, not {model!r}")

    def load(self, key: ModelKey, device: str = "cpu", dtype: str = "float32"):
        from studio.core.checkpoint import content_hash, load_model
        from studio.core.dit import DiT
        from studio.lora import load_adapter, set_model_id
        from studio.paths import model_path
        from studio.tasks.image.pipeline import ImagePipeline

        name = key.model or self.default_model
        path = model_path(name)
        torch_dtype = getattr(torch, dtype)
        model = load_model(DiT, path, device=device, dtype=torch.float32)
        set_model_id(model, name)
        for adapter, weight in key.adapters:
            load_adapter(model, adapter, weight=weight)
        model = torch.nn.Module.to(model, device, torch_dtype).eval()  # no diffusers dtype-cast warning
        return ImagePipeline(model, name, content_hash(path), device, torch_dtype, key.adapters)

    def run(self, pipeline, inputs: ImageInputs, ctx: RunContext) -> TaskResult:
        from studio.io.media import write_png
        from studio.tasks.image.pipeline import generate_arrays, to_uint8

        # 1. the recipe every output carries
        recipe = {**ctx.recipe, "task": self.name, "inputs": {**inputs.model_dump(), "seed": ctx.seed},
                  "model": pipeline.name, "model_hash": pipeline.content_hash,
                  "adapters": [f"{n}:{w}" for n, w in pipeline.adapters], "seed": ctx.seed}

        # 2. progress per denoising step with a preview of the predicted image
        def on_step(i: int, n: int, x0: torch.Tensor) -> None:
            ctx.step(i, n, f"step {i + 1}/{n}", to_uint8(x0[:1])[0])

        # 3. denoise all images of the job in one batch
        images = generate_arrays(pipeline.model, None, [inputs.prompt] * inputs.num, size=inputs.size,
                                 steps=inputs.steps, guidance=inputs.guidance, seed=ctx.seed, sampler=inputs.sampler,
                                 negative_prompt=inputs.negative_prompt, callback=on_step, device=pipeline.device)
        # 4. write PNGs with their recipe
        files = []
        for k, img in enumerate(images):
            path = write_png(ctx.path(f"image_{k:02d}.png"), img, {**recipe, "index": k})
            files.append(OutputFile(path, "image", f"{inputs.prompt} #{k}"))
        return TaskResult(files=files, data={"model": pipeline.name, "size": inputs.size, "num": inputs.num})
