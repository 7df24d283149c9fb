"""Media inputs submitted over HTTP must point inside the studio's own folders.

A job's media input is a server path. Without this check any client could make a worker read
``/etc/shadow`` "as an image"; with it, a path must come from ``POST /api/uploads`` or lie in the
outputs or datasets library. (Local tools — CLI, batch files — are not behind this rule.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from studio.api.fields import field_specs
from studio.tasks.base import InputError, Task


def check_media_paths(task: Task, inputs: dict[str, Any], roots: tuple[Path, ...]) -> None:
    resolved_roots = [r.resolve() for r in roots]
    for spec in field_specs(task.json_schema()):
        value = inputs.get(spec.name)
        if not spec.media or value is None:
            continue
        if not isinstance(value, str) or not value:
            continue  # wrong type: the task's schema validation names it
        path = Path(value).resolve()  # follows symlinks: a link out of the roots is refused too
        if not any(path.is_relative_to(root) for root in resolved_roots):
            raise InputError(spec.name, "must be a path returned by POST /api/uploads (or inside outputs/ or datasets/)")
