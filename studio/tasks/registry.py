"""Task registry: built-in plugins plus third-party ones from the ``studio.tasks`` entry points.

Plugins are imported lazily and fault-isolated: a plugin that fails to import is logged and
skipped (ComfyUI's custom nodes work the same way), the others stay available.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from importlib.metadata import entry_points

from studio.tasks.base import Task

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "studio.tasks"

# name -> "module:Class". Each plugin issue adds its line.
BUILTIN: dict[str, str] = {
    "image": "studio.tasks.image.task:ImageTask",
    "vfx": "studio.tasks.vfx.task:VfxTask",
    "diffscaler": "studio.tasks.diffscaler.task:DiffscalerTask",
    "shape3d": "studio.tasks.shape3d.task:Shape3dTask",
    "music": "studio.tasks.music.task:MusicTask",
    "voice": "studio.tasks.voice.task:VoiceTask",
    "pose": "studio.tasks.pose.task:PoseTask",
}

_registered: dict[str, Task] = {}  # tasks registered in-process (tests, embedding apps)
_loaded: dict[str, Task] | None = None
_errors: dict[str, str] = {}
_singles: dict[str, Task] = {}  # built-ins imported one at a time by get_task


def register(task: Task) -> Task:
    """Register a task object in this process (used by tests and by apps embedding Studio)."""
    _registered[task.name] = task
    return task


def unregister(name: str) -> None:
    _registered.pop(name, None)


def _load_target(target: str) -> Task:
    module_name, _, attr = target.partition(":")
    obj = getattr(importlib.import_module(module_name), attr)
    return obj() if isinstance(obj, type) else obj


def _discover() -> dict[str, Task]:
    found: dict[str, Task] = {}
    for name, target in BUILTIN.items():
        module_name = target.partition(":")[0]
        if importlib.util.find_spec(module_name.rsplit(".", 1)[0]) is None:
            continue  # plugin package not present
        try:
            found[name] = _load_target(target)
        except Exception as exc:  # fault isolation: one broken plugin never hides the others
            _errors[name] = f"{type(exc).__name__}: {exc}"
            log.warning("task %r failed to load and is skipped: %s", name, exc)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            task = _load_target(ep.value)
            found.setdefault(task.name, task)
        except Exception as exc:
            _errors[ep.name] = f"{type(exc).__name__}: {exc}"
            log.warning("plugin %r (%s) failed to load and is skipped: %s", ep.name, ep.value, exc)
    return found


def tasks() -> dict[str, Task]:
    """All available tasks by name (built-in, entry points, then in-process registrations)."""
    global _loaded
    if _loaded is None:
        _loaded = {**_discover(), **_singles}
    return {**_loaded, **_registered}


def get_task(name: str) -> Task:
    """One task by name; a built-in is imported alone (no scan of every plugin and its torch)."""
    if name in _registered:
        return _registered[name]
    if _loaded is not None and name in _loaded:
        return _loaded[name]
    if name in _singles:
        return _singles[name]
    if _loaded is None and name in BUILTIN and name not in _errors:
        try:
            _singles[name] = _load_target(BUILTIN[name])
            return _singles[name]
        except Exception as exc:
            _errors[name] = f"{type(exc).__name__}: {exc}"
            log.warning("task %r failed to load: %s", name, exc)
    all_tasks = tasks()
    if name not in all_tasks:
        hint = f" (it failed to load: {_errors[name]})" if name in _errors else ""
        raise KeyError(f"unknown task {name!r}{hint}; available: {', '.join(sorted(all_tasks)) or 'none'}")
    return all_tasks[name]


def load_errors() -> dict[str, str]:
    tasks()
    return dict(_errors)


def reset() -> None:
    """Forget discovered plugins (tests)."""
    global _loaded
    _loaded = None
    _errors.clear()
    _singles.clear()
