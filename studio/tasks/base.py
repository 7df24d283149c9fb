"""The task-plugin contract.

A task declares a name, a pydantic input schema, its output kinds and default model, and two
methods: ``load(device, dtype, model, adapters)`` returns a pipeline object (cached by the job
system's model cache under ``cache_key``) and ``run(pipeline, inputs, ctx)`` does one job.
``ctx`` gives the seed and a seeded generator, a progress callback, a per-job cancel token and a
staging folder into which outputs are written with their recipe embedded.

CLI flags, API schemas and web widgets are generated from ``Task.Inputs``. Media inputs are file
paths whose field carries ``json_schema_extra={"media": "image" | "video" | "audio" | "midi" |
"mesh" | "mask"}`` so front-ends can pick an upload widget.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

from pydantic import BaseModel, ConfigDict, Field

OUTPUT_KINDS = ("image", "video", "audio", "midi", "mesh", "json", "text")


class Canceled(Exception):
    """Raised inside a job when its cancel token is set; the job ends as ``canceled``."""


class CancelToken:
    """Per-job cooperative cancellation: the loop calls ``check()`` every step.

    ``poll`` lets an executor back the token by something outside the process (the job table).
    """

    def __init__(self, poll: Callable[[], bool] | None = None):
        self._event = threading.Event()
        self._poll = poll

    def cancel(self) -> None:
        self._event.set()

    @property
    def canceled(self) -> bool:
        if not self._event.is_set() and self._poll is not None and self._poll():
            self._event.set()
        return self._event.is_set()

    def check(self) -> None:
        if self.canceled:
            raise Canceled("job canceled")


ProgressFn = Callable[[float, str, Any], None]  # (fraction 0..1, message, preview image or None)


@dataclass
class OutputFile:
    path: Path
    kind: str  # one of OUTPUT_KINDS
    label: str = ""


@dataclass
class TaskResult:
    files: list[OutputFile] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)  # JSON-able results (scores, transcript…)


@dataclass
class RunContext:
    """What a job sees of the world: seed, generator, progress, cancel token, staging folder."""

    seed: int
    out_dir: Path
    recipe: dict[str, Any] = field(default_factory=dict)  # embedded into every output file
    progress_fn: ProgressFn | None = None
    cancel: CancelToken = field(default_factory=CancelToken)
    device: str = "cpu"
    dtype: str = "float32"

    def generator(self, device: str | None = None):
        import torch

        return torch.Generator(device or self.device).manual_seed(self.seed)

    def progress(self, fraction: float, message: str = "", preview: Any = None) -> None:
        """Report progress; raises ``Canceled`` when the job was canceled (one check per step)."""
        self.cancel.check()
        if self.progress_fn is not None:
            self.progress_fn(max(0.0, min(1.0, float(fraction))), message, preview)

    def step(self, i: int, n: int, message: str = "", preview: Any = None) -> None:
        self.progress((i + 1) / max(n, 1), message or f"step {i + 1}/{n}", preview)

    def path(self, name: str) -> Path:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        return self.out_dir / name


class TaskInputs(BaseModel):
    """Base of every task's input schema: unknown fields are errors, a seed is always accepted."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    seed: int | None = Field(None, ge=0, le=2**31 - 1, description="Random seed; empty picks one and records it.")


@dataclass(frozen=True)
class ModelKey:
    """What a loaded pipeline depends on; the model cache is keyed by it (+ device, dtype)."""

    model: str | None = None
    adapters: tuple[tuple[str, float], ...] = ()
    guide: tuple[tuple[str, float], ...] = ()  # adapters of a second, weaker copy of the model (autoguidance)


class Task(ABC):
    name: ClassVar[str]
    title: ClassVar[str] = ""
    description: ClassVar[str] = ""
    Inputs: ClassVar[type[TaskInputs]]
    output_kinds: ClassVar[tuple[str, ...]] = ()
    default_model: ClassVar[str | None] = None

    def validate(self, raw: dict[str, Any]) -> TaskInputs:
        """Schema validation plus the task's own checks (files exist, sizes fit the model…).

        Raises ``pydantic.ValidationError`` or ``InputError`` naming the field, before work starts.
        """
        inputs = self.Inputs.model_validate(raw)
        self.check(inputs)
        return inputs

    def check(self, inputs: TaskInputs) -> None:
        """Task-specific validation beyond the schema; raise ``InputError(field, message)``."""

    def cache_key(self, inputs: TaskInputs) -> ModelKey:
        return ModelKey(getattr(inputs, "model", None) or self.default_model, _adapters_of(inputs))

    @abstractmethod
    def load(self, key: ModelKey, device: str = "cpu", dtype: str = "float32") -> Any:
        """Build the pipeline for ``key`` (model name + adapters) on ``device``."""

    @abstractmethod
    def run(self, pipeline: Any, inputs: TaskInputs, ctx: RunContext) -> TaskResult:
        """Do one job; call ``ctx.progress``/``ctx.step`` each step; write files under ``ctx.out_dir``."""

    def json_schema(self) -> dict[str, Any]:
        return self.Inputs.model_json_schema()


class InputError(ValueError):
    """Bad input caught by a task's own checks; ``field`` names the offending input."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def _adapters_of(inputs: TaskInputs) -> tuple[tuple[str, float], ...]:
    adapters = getattr(inputs, "adapters", None) or ()
    return tuple(parse_adapter(a) if isinstance(a, str) else tuple(a) for a in adapters)


def parse_adapter(spec: str) -> tuple[str, float]:
    """``"name:0.8"`` → ``("name", 0.8)``; a bare name has weight 1.0."""
    name, _, weight = spec.partition(":")
    if not name:
        raise InputError("adapters", f"empty adapter name in {spec!r}")
    try:
        return name, float(weight) if weight else 1.0
    except ValueError:
        raise InputError("adapters", f"weight of {name!r} is not a number: {weight!r}") from None
