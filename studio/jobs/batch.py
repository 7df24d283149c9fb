"""Batch files for ``studio batch``: a TOML/YAML list of jobs with seed lists and parameter sweeps.

    out = "outputs/batch"          # optional; --out wins
    [[jobs]]
    task = "image"
    seeds = [1, 2, 3]              # one job per seed
    prompt = ["a red circle", "a blue square"]   # a list for a scalar field = a sweep
    steps = 20

Every list given for a field whose own type is not a list is swept; for a list-typed field
(``adapters``) a list of lists is swept. All combinations (cartesian product) × seeds become jobs.
Everything is validated before the first job runs; errors name the job and the field.
"""

from __future__ import annotations

import itertools
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studio.jobs.errors import describe_error

RESERVED = {"task", "seeds", "seed", "name"}


class BatchFileError(ValueError):
    """The batch file is malformed; the message names the job (1-based) and the key."""


@dataclass
class BatchJob:
    task: str
    inputs: dict[str, Any]  # validated, seed filled in
    seed: int
    name: str


def load_batch_file(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise BatchFileError(f"FILE: {path} does not exist")
    text = path.read_text("utf-8")
    try:
        if path.suffix.lower() == ".toml":
            import tomllib

            data = tomllib.loads(text)
        elif path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            raise BatchFileError(f"FILE: expected a .toml, .yaml or .yml file, got {path.name}")
    except BatchFileError:
        raise
    except Exception as exc:
        raise BatchFileError(f"FILE: {path.name} does not parse: {exc}") from None
    if isinstance(data, list):
        data = {"jobs": data}
    if not isinstance(data, dict) or not isinstance(data.get("jobs"), list) or not data["jobs"]:
        raise BatchFileError("jobs: the file must hold a non-empty list of jobs ([[jobs]] in TOML, jobs: in YAML)")
    return data


def expand_batch(data: dict[str, Any]) -> list[BatchJob]:
    """All jobs of the file, validated (raises ``BatchFileError`` naming job and field)."""
    from studio.jobs.plugins import get_task
    from studio.jobs.queue import validate_inputs

    jobs: list[BatchJob] = []
    for n, entry in enumerate(data["jobs"], start=1):
        if not isinstance(entry, dict) or "task" not in entry:
            raise BatchFileError(f"jobs[{n}].task: every job needs a task name")
        try:
            task = get_task(entry["task"])
        except KeyError as exc:
            raise BatchFileError(f"jobs[{n}].task: {exc.args[0]}") from None
        seeds = _seeds(entry, n)
        base = {k: v for k, v in entry.items() if k not in RESERVED}
        for i, combo in enumerate(_sweep(base, task.Inputs)):
            for seed in seeds:
                raw = {**combo, **({"seed": seed} if seed is not None else {})}
                try:
                    inputs, real_seed = validate_inputs(task.name, raw)
                except Exception as exc:
                    raise BatchFileError(f"jobs[{n}]: {describe_error(exc)}") from None
                label = entry.get("name") or task.name
                jobs.append(BatchJob(task.name, inputs, real_seed, f"{label}#{n}.{i + 1} seed={real_seed}"))
    return jobs


def _seeds(entry: dict[str, Any], n: int) -> list[int | None]:
    if "seeds" in entry and "seed" in entry:
        raise BatchFileError(f"jobs[{n}]: give either seed or seeds, not both")
    if "seeds" in entry:
        seeds = entry["seeds"]
        if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
            raise BatchFileError(f"jobs[{n}].seeds: must be a non-empty list of integers")
        return list(seeds)
    return [entry.get("seed")]


def _sweep(base: dict[str, Any], schema: type) -> list[dict[str, Any]]:
    fields = getattr(schema, "model_fields", {})
    axes: list[tuple[str, list[Any]]] = []
    fixed: dict[str, Any] = {}
    for key, value in base.items():
        is_list_field = key in fields and _is_list_type(fields[key].annotation)
        if isinstance(value, list) and (not is_list_field or (value and all(isinstance(v, list) for v in value))):
            axes.append((key, value))
        else:
            fixed[key] = value
    if not axes:
        return [fixed]
    keys = [k for k, _ in axes]
    return [{**fixed, **dict(zip(keys, combo))} for combo in itertools.product(*(v for _, v in axes))]


def _is_list_type(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (list, tuple, set, frozenset):
        return True
    return any(_is_list_type(a) for a in typing.get_args(annotation)) if origin is not None else False
