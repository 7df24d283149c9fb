"""One training loop for every plugin (accelerate): config, resumable data order, checkpoints, metrics.

Lazy exports (PEP 562) keep ``import studio.train`` free of torch/accelerate until used.

    from studio.train import Trainer, TrainConfig, load_config
    cfg = load_config("configs/my_task.toml", MyTaskConfig)    # a TrainConfig subclass
    Trainer(model, objective, dataset, cfg, sample_fn=draw).train()
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Trainer": "trainer",
    "TrainResult": "trainer",
    "TrainState": "trainer",
    "TrainConfig": "config",
    "Section": "config",
    "OptimizerConfig": "config",
    "ScheduleConfig": "config",
    "EmaConfig": "config",
    "CheckpointConfig": "config",
    "SampleConfig": "config",
    "LogConfig": "config",
    "ConfigError": "config",
    "load_config": "config",
    "validate_config": "config",
    "read_config_file": "config",
    "ResumableBatchSampler": "sampler",
    "preserved_rng": "rng",
    "read_metrics": "metrics",
    "plot_loss_curve": "metrics",
    "latest_checkpoint": "checkpoints",
    "list_checkpoints": "checkpoints",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'studio.train' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"studio.train.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
