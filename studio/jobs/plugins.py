"""Task lookup for the job system, plus extra plugins named in ``STUDIO_EXTRA_TASKS``.

Worker processes (multiprocessing spawn, Ray actors) start with a fresh registry, so tasks that an
embedding app or a test registered in-process must be named where every process can import them:
``STUDIO_EXTRA_TASKS="package.module:TaskClass,other.module:task_object"``.
"""

from __future__ import annotations

import importlib
import logging
import os

from studio.tasks.base import Task

log = logging.getLogger(__name__)
ENV = "STUDIO_EXTRA_TASKS"
_done: set[str] = set()
_extra: dict[str, Task] = {}  # name -> task loaded from STUDIO_EXTRA_TASKS


def load_extra_tasks(spec: str | None = None) -> list[str]:
    """Import and register each ``module:attr`` listed (once per process); returns the task names."""
    from studio.tasks import registry

    names = []
    for target in (spec if spec is not None else os.environ.get(ENV, "")).split(","):
        target = target.strip()
        if not target or target in _done:
            continue
        module_name, _, attr = target.partition(":")
        try:
            obj = getattr(importlib.import_module(module_name), attr)
            task = obj() if isinstance(obj, type) else obj
            registry.register(task)
            _extra[task.name] = task
            names.append(task.name)
            _done.add(target)
        except Exception as exc:  # fault isolation, like the registry's own plugins
            log.warning("extra task %r failed to load and is skipped: %s", target, exc)
    return names


def get_task(name: str) -> Task:
    from studio.tasks.registry import get_task as _get

    load_extra_tasks()
    if name in _extra:  # without a registry scan: a worker running only these never imports every plugin
        return _extra[name]
    return _get(name)


def all_tasks() -> dict[str, Task]:
    from studio.tasks.registry import tasks

    load_extra_tasks()
    return tasks()
