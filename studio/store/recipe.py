"""The recipe every output carries: enough to reproduce the file with ``studio generate --from-metadata``.

Deliberately free of timestamps, job ids and paths of the run, so two runs of the same recipe write
byte-identical files (a requeued job's output equals an uninterrupted run's).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from studio import __version__
from studio.tasks.base import ModelKey


def make_recipe(task: str, inputs: dict[str, Any], seed: int, key: ModelKey | None = None) -> dict[str, Any]:
    key = key or ModelKey()
    return {
        "studio_version": __version__,
        "task": task,
        "seed": int(seed),
        "inputs": {**inputs, "seed": int(seed)},
        "model": {"name": key.model, "hash": model_hash(key.model)} if key.model else None,
        "adapters": [{"name": n, "weight": w, "hash": adapter_hash(n)} for n, w in key.adapters],
        **({"guide_adapters": [{"name": n, "weight": w, "hash": adapter_hash(n)} for n, w in key.guide]}
           if key.guide else {}),
    }


def model_hash(name: str | None) -> str | None:
    from studio.paths import model_path

    return _hash_of(model_path(name)) if name else None


def adapter_hash(name: str) -> str | None:
    from studio.paths import adapter_path

    return _hash_of(adapter_path(name))


def _hash_of(path: Path) -> str | None:
    if not path.exists():
        return None
    stat = path.stat()
    newest = max((p.stat().st_mtime_ns for p in path.rglob("*")), default=stat.st_mtime_ns) if path.is_dir() else stat.st_mtime_ns
    return _cached_hash(str(path.resolve()), newest)


@functools.lru_cache(maxsize=256)
def _cached_hash(path: str, mtime_ns: int) -> str | None:
    # the checkpoint layer owns how a model's content is hashed; keyed by mtime so edits re-hash
    try:
        from studio.core.checkpoint import content_hash
    except ImportError:
        return None
    return content_hash(path)


def inputs_of(recipe: dict[str, Any]) -> tuple[str, dict[str, Any], int]:
    """(task, inputs, seed) from a recipe read back from a file."""
    inputs = dict(recipe["inputs"])
    seed = int(recipe.get("seed", inputs.get("seed")))
    inputs["seed"] = seed
    return recipe["task"], inputs, seed


__all__ = ["make_recipe", "inputs_of", "model_hash", "adapter_hash"]
