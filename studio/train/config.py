"""Training configuration: typed pydantic sections, loaded from TOML or YAML, unknown keys are errors.

A plugin extends ``TrainConfig`` with its own sections::

    class ImageTrainConfig(TrainConfig):
        model: ImageModelSection
        data: ImageDataSection = ImageDataSection()

    cfg = load_config("configs/image.toml", ImageTrainConfig)

and the same file holds the shared keys and the plugin's sections (see docs/training.md).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal, Mapping, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator



class Section(BaseModel):
    """Base of every config section: unknown keys are errors, values are checked on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())


class OptimizerConfig(Section):
    """AdamW."""

    lr: float = Field(1e-4, gt=0)
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = Field(0.0, ge=0)
    eps: float = Field(1e-8, gt=0)

    @field_validator("betas")
    @classmethod
    def _betas_in_range(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not all(0.0 <= b < 1.0 for b in v):
            raise ValueError(f"each beta must be in [0, 1), got {v}")
        return v


class ScheduleConfig(Section):
    """Learning-rate schedule (diffusers ``get_scheduler``): linear warm-up, then ``name``."""

    name: Literal["cosine", "constant", "constant_with_warmup", "linear", "cosine_with_restarts", "polynomial"] = "cosine"
    warmup_steps: int = Field(0, ge=0)


class EmaConfig(Section):
    """Exponential moving average of the trainable weights (diffusers ``EMAModel``)."""

    decay: float = Field(0.999, gt=0, lt=1)
    update_after_step: int = Field(0, ge=0)
    # False: decay ramps as (1+n)/(10+n) up to ``decay``; True: 1 - (1+n)^-power (long runs)
    warmup: bool = False
    power: float = Field(2 / 3, gt=0)


class CheckpointConfig(Section):
    every: int = Field(0, ge=0, description="Save every N optimizer steps (0: only at the end).")
    keep: int = Field(3, ge=1, description="Keep the last K checkpoints.")
    at_end: bool = True


class SampleConfig(Section):
    every: int = Field(0, ge=0, description="Call the sample callback every M steps (0: never).")
    use_ema: bool = True  # sample with the EMA weights when EMA is on
    at_end: bool = True


class LogConfig(Section):
    every: int = Field(10, ge=1, description="Write a metrics line every N steps.")
    progress_bar: bool = True


class TrainConfig(Section):
    """The keys every training run shares; plugins subclass it to add their own sections."""

    output_dir: Path
    max_steps: int = Field(..., gt=0, description="Optimizer steps (each = grad_accum micro-batches).")
    batch_size: int = Field(8, ge=1, description="Micro-batch size per process.")
    grad_accum: int = Field(1, ge=1)
    seed: int = Field(0, ge=0)
    mixed_precision: Literal["no", "bf16"] = "no"
    max_grad_norm: float | None = Field(1.0, ge=0, description="Clip the global grad norm (0 or null: no clipping).")
    num_workers: int = Field(0, ge=0)
    device: Literal["auto", "cpu"] = "auto"
    find_unused_parameters: bool = False  # DDP: set when the objective leaves some trainable weights unused
    resume: str | None = Field(None, description='"latest", a checkpoint folder, or null for a fresh run.')
    optimizer: OptimizerConfig = OptimizerConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    ema: EmaConfig | None = None
    checkpoint: CheckpointConfig = CheckpointConfig()
    samples: SampleConfig = SampleConfig()
    log: LogConfig = LogConfig()

    def to_json_dict(self) -> dict[str, Any]:
        return json.loads(self.model_dump_json())


class ConfigError(ValueError):
    """A config file that cannot be used; the message names the file and every bad key."""


C = TypeVar("C", bound=BaseModel)


def read_config_file(path: str | os.PathLike) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: no such config file")
    text = p.read_text()
    try:
        if p.suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        elif p.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            raise ConfigError(f"{p}: unknown config format {p.suffix!r} (use .toml, .yaml or .yml)")
    except ConfigError:
        raise
    except Exception as e:  # tomllib.TOMLDecodeError, yaml.YAMLError: name the file
        raise ConfigError(f"{p}: cannot parse: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: top level must be a table of keys, got {type(data).__name__}")
    return data


def _describe(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        key = ".".join(str(part) for part in e["loc"]) or "(top level)"
        msg = "unknown key" if e["type"] == "extra_forbidden" else e["msg"]
        lines.append(f"  {key}: {msg}")
    return "\n".join(lines)


def validate_config(data: Mapping[str, Any], cls: type[C] = TrainConfig, source: str = "config") -> C:
    try:
        return cls.model_validate(dict(data))
    except ValidationError as e:
        raise ConfigError(f"{source}: invalid training config\n{_describe(e)}") from None


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["optimizer.lr=1e-4", "model.preset=tiny"]`` → ``{"optimizer.lr": 1e-4, ...}``: a script's
    ``--set KEY=VALUE`` flags; values parse as JSON when they can, else stay strings."""
    overrides: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    return overrides


def load_config(path: str | os.PathLike, cls: type[C] = TrainConfig, overrides: Mapping[str, Any] | None = None) -> C:
    """Read a TOML/YAML file into ``cls``; ``overrides`` (dotted keys) win over the file."""
    data = read_config_file(path)
    for dotted, value in (overrides or {}).items():
        node = data
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return validate_config(data, cls, source=str(path))
