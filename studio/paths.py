"""Where the asset library lives: models/, adapters/, datasets/, outputs/.

The root is the checkout (or ``STUDIO_HOME``); each folder can be moved with its own variable
(``STUDIO_MODELS``, ``STUDIO_ADAPTERS``, ``STUDIO_DATASETS``, ``STUDIO_OUTPUTS``).
"""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    env = os.environ.get("STUDIO_HOME")
    if env:
        return Path(env)
    # an editable install: the checkout holding studio/
    return Path(__file__).resolve().parent.parent


def _dir(var: str, name: str) -> Path:
    env = os.environ.get(var)
    return Path(env) if env else home() / name


def models_dir() -> Path:
    return _dir("STUDIO_MODELS", "models")


def adapters_dir() -> Path:
    return _dir("STUDIO_ADAPTERS", "adapters")


def datasets_dir() -> Path:
    return _dir("STUDIO_DATASETS", "datasets")


def outputs_dir() -> Path:
    return _dir("STUDIO_OUTPUTS", "outputs")


def state_dir() -> Path:
    """Job database and worker state."""
    return _dir("STUDIO_STATE", ".studio")


def model_path(name_or_path: str) -> Path:
    """A model by name from models/, or a path given directly."""
    p = Path(name_or_path)
    if p.exists():
        return p
    return models_dir() / name_or_path


def adapter_path(name_or_path: str) -> Path:
    p = Path(name_or_path)
    if p.exists():
        return p
    return adapters_dir() / name_or_path
