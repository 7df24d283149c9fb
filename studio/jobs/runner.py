"""One job, start to finish: validate, load (through the model cache), run in staging, publish.

The same function runs in a local worker process, in a Ray actor, in ``studio generate`` and in
``studio batch``; only where progress goes and where the cancel token looks differ.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from studio.jobs.cache import ModelCache
from studio.store.outputs import OutputStore
from studio.store.recipe import make_recipe
from studio.tasks.base import CancelToken, OutputFile, ProgressFn, RunContext, TaskResult


def run_job(
    task_name: str,
    inputs: dict[str, Any],
    seed: int,
    out_dir: str | os.PathLike,
    progress_fn: ProgressFn | None = None,
    cancel: CancelToken | None = None,
    *,
    cache: ModelCache | None = None,
    device: str = "cpu",
    dtype: str = "float32",
    job_id: str | None = None,
    store: OutputStore | None = None,
) -> TaskResult:
    """Run one job and publish its files at ``out_dir`` (renamed from a staging folder).

    Raises ``Canceled`` when ``cancel`` fires, or the task's error; either way nothing is left at
    ``out_dir`` and the staging folder is removed.
    """
    from studio.jobs.plugins import get_task

    out_dir = Path(out_dir)
    cancel = cancel or CancelToken()
    # 1. validate (again: a file named in the inputs may have vanished since submit)
    task = get_task(task_name)
    validated = task.validate({**inputs, "seed": int(seed)})
    key = task.cache_key(validated)
    # 2. load, or reuse what this worker already loaded
    if cache is not None:
        pipeline, _ = cache.get_or_load((task_name, key, device, dtype), lambda: task.load(key, device, dtype))
    else:
        pipeline = task.load(key, device, dtype)
    cancel.check()
    # 3. run into a staging folder
    store = store or OutputStore(out_dir.parent)
    staging = store.staging_dir(job_id or out_dir.name)
    recipe = make_recipe(task_name, validated.model_dump(mode="json"), int(seed), key)
    ctx = RunContext(seed=int(seed), out_dir=staging, recipe=recipe, progress_fn=progress_fn, cancel=cancel,
                     device=device, dtype=dtype)
    try:
        result = task.run(pipeline, validated, ctx)
        if result is None:
            result = TaskResult()
        # 4. publish: one rename makes every file visible at once
        final = store.commit(staging, out_dir)
    except BaseException:
        store.discard(staging)
        raise
    return TaskResult(files=[_moved(f, staging, final) for f in result.files], data=result.data)


def _moved(f: OutputFile, staging: Path, final: Path) -> OutputFile:
    path = Path(f.path)
    try:
        path = final / path.resolve().relative_to(staging.resolve())
    except ValueError:
        pass  # a file the task wrote elsewhere keeps its path
    return OutputFile(path=path, kind=f.kind, label=f.label)


def result_to_json(result: TaskResult, final: Path, outputs_root: Path) -> dict[str, Any]:
    """The ``result`` column: paths relative to the outputs root (what the API serves)."""

    def rel(p: Path) -> str:
        try:
            return Path(p).resolve().relative_to(outputs_root.resolve()).as_posix()
        except ValueError:
            return str(p)

    return {
        "out_dir": rel(final),
        "files": [{"path": rel(f.path), "kind": f.kind, "label": f.label} for f in result.files],
        "data": result.data,
    }
