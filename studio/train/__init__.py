"""One training loop for every plugin (accelerate): config, resumable data order, checkpoints, metrics.

Lazy exports (PEP 562) keep ``import studio.train`` free of torch/accelerate until used.

    from studio.train import Trainer, TrainConfig, load_config
    cfg = load_config("configs/my_task.toml", MyTaskConfig)    # a TrainConfig subclass
    Trainer(model, objective, dataset, cfg, sample_fn=draw).train()
"""

from __future__ import annotations

from studio._lazy import lazy_exports

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
    "parse_overrides": "config",
    "validate_config": "config",
    "read_config_file": "config",
    "ResumableBatchSampler": "sampler",
    "preserved_rng": "rng",
    "read_metrics": "metrics",
    "plot_loss_curve": "metrics",
    "latest_checkpoint": "checkpoints",
    "list_checkpoints": "checkpoints",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
