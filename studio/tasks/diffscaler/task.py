"""The ``diffscaler`` task: one frozen DiT, a tiny affiner per dataset, several datasets per batch.

Inputs name the datasets (or affiner adapters) to mix; ``num`` samples are spread over them in
turn, rendered in **one** batch (each sample routed to its dataset's affiners) and written as a
grid with one row per dataset.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from studio.tasks.base import InputError, ModelKey, OutputFile, RunContext, Task, TaskInputs, TaskResult

DEFAULT_DATASETS = ["outline", "pixel", "photo-glyph"]
VIEW_SCALE = 4  # nearest-neighbour upscale of the 32 px samples in the saved grid


class DiffscalerInputs(TaskInputs):
    datasets: list[str] = Field(default_factory=lambda: list(DEFAULT_DATASETS), min_length=1, max_length=16,
                                description="Datasets to mix in one batch: a name with an affiner "
                                            "adapters/diffscaler-<name>, or an affiner adapter name/path.")
    num: int = Field(8, ge=1, le=64, description="Number of samples, spread over the datasets in turn.")
    steps: int = Field(25, ge=1, le=200, description="Denoising steps.")
    guidance: float = Field(2.0, ge=1.0, le=15.0, description="Classifier-free guidance scale.")
    sampler: Literal["ddim", "dpm++", "euler", "ddpm"] = Field("ddim", description="Sampler.")
    model: str = Field("image-dit", description="The frozen base model under models/ (the image task's DiT).")


class DiffscalerTask(Task):
    name = "diffscaler"
    title = "Diffscaler"
    description = "One frozen DiT + tiny per-dataset affiners: a grid mixing several datasets in one batch."
    Inputs = DiffscalerInputs
    output_kinds = ("image", "json")
    default_model = "image-dit"

    # ---- validation (before any work) ----------------------------------------------------------

    def check(self, inputs: DiffscalerInputs) -> None:  # type: ignore[override]
        from studio.paths import model_path

        if not (model_path(inputs.model) / "config.json").is_file():
            raise InputError("model", f"unknown model {inputs.model!r} (no models/{inputs.model}/config.json)")
        if len(set(inputs.datasets)) != len(inputs.datasets):
            raise InputError("datasets", f"a dataset is listed twice: {inputs.datasets}")
        for d in inputs.datasets:
            check_adapter(d, Path(inputs.model).name)

    def cache_key(self, inputs: DiffscalerInputs) -> ModelKey:  # type: ignore[override]
        return ModelKey(inputs.model, tuple((str(resolve(d)), 1.0) for d in inputs.datasets))

    # ---- pipeline ------------------------------------------------------------------------------

    def load(self, key: ModelKey, device: str = "cpu", dtype: str = "float32") -> Any:
        from studio.tasks.diffscaler.model import load_base

        net = load_base(key.model or self.default_model, device)
        for path, _ in key.adapters:
            net.load(path, dataset_of(Path(path)))
        return net

    def run(self, pipeline: Any, inputs: DiffscalerInputs, ctx: RunContext) -> TaskResult:  # type: ignore[override]
        import torch

        from studio.io.media import write_json, write_png
        from studio.tasks.diffscaler.data import grid
        from studio.tasks.diffscaler.pipeline import denoise, initial_noise, to_uint8

        net = pipeline
        # 1. which dataset and class each sample gets (datasets in turn, classes in turn per dataset)
        names = [dataset_of(resolve(d)) for d in inputs.datasets]
        missing = [d for d, n in zip(inputs.datasets, names) if n not in net.datasets]
        if missing:
            raise InputError("datasets", f"{missing} not loaded in this pipeline")
        per_sample = [names[i % len(names)] for i in range(inputs.num)]
        labels = [(i // len(names)) % max(net.num_labels(d), 1) for i, d in enumerate(per_sample)]
        # 2. one batch, one denoising loop (progress + cancel every step)
        x_T = initial_noise(inputs.num, net.in_channels, net.sample_size, ctx.seed)
        with torch.no_grad():
            x0 = denoise(net, per_sample, labels, x_T, inputs.steps, inputs.guidance, inputs.sampler,
                         callback=lambda i, n, _x: ctx.step(i, n, f"denoising {i + 1}/{n}"))
        # 3. grid: one row per dataset
        images = to_uint8(x0)
        rows = [[i for i, d in enumerate(per_sample) if d == n] for n in names]
        cols = max(len(r) for r in rows)
        import numpy as np

        blank = np.full(images.shape[1:], 255, np.uint8)
        ordered = np.stack([images[r[j]] if j < len(r) else blank for r in rows for j in range(cols)])
        sheet = grid(ordered, cols).repeat(VIEW_SCALE, 0).repeat(VIEW_SCALE, 1)
        recipe = {**ctx.recipe, "datasets": names, "labels": labels}
        png = write_png(ctx.path("diffscaler_grid.png"), sheet, recipe)
        data = {"datasets": per_sample, "labels": labels,
                "classes": [_class_name(net, d, c) for d, c in zip(per_sample, labels)]}
        js = write_json(ctx.path("diffscaler_grid.json"), {**data, "recipe": recipe})
        return TaskResult([OutputFile(png, "image", "grid"), OutputFile(js, "json", "samples")], data)


# ------------------------------------------------------------------------------------------------


def resolve(name: str) -> Path:
    """A dataset name → its affiner folder (``adapters/diffscaler-<name>``), or an adapter name/path."""
    from studio.lora.files import AdapterNotFound, resolve_adapter_dir
    from studio.tasks.diffscaler.adapters import adapter_name

    for candidate in (adapter_name(name), name):
        try:
            return resolve_adapter_dir(candidate)
        except (AdapterNotFound, FileNotFoundError):
            continue
    from studio.tasks.diffscaler.adapters import available

    known = ", ".join(sorted(available())) or "none"
    raise InputError("datasets", f"unknown dataset or adapter {name!r} (datasets with an affiner: {known})")


def dataset_of(path: Path) -> str:
    from studio.lora.files import read_metadata

    return read_metadata(path).get("dataset") or path.name


def check_adapter(name: str, model: str) -> Path:
    """The adapter exists, is an affiner (only affiners share a batch) and belongs to ``model``."""
    from studio.lora.affiner import ADAPTER_TYPE
    from studio.lora.files import adapter_info

    path = resolve(name)
    info = adapter_info(path)
    if info.type != ADAPTER_TYPE:
        raise InputError("datasets", f"{path.name!r} is a {info.type!r} adapter; only affiners can be mixed "
                                     "in one batch (per-sample routing)")
    if info.base and info.base != model:
        raise InputError("datasets", f"affiner {path.name!r} was trained on base {info.base!r}, "
                                     f"not on model {model!r}")
    return path


def _class_name(net: Any, dataset: str, label: int) -> str:
    from studio.tasks.diffscaler.data import PROCEDURAL

    spec = PROCEDURAL.get(dataset)
    return spec.classes[label] if spec and label < len(spec.classes) else str(label)
