from __future__ import annotations

from fastapi import APIRouter, HTTPException

from studio.api.schemas import TaskOut
from studio.jobs import plugins
from studio.tasks.base import Task

router = APIRouter(prefix="/api/tasks", tags=["tasks"])


def task_out(task: Task) -> dict:
    return {
        "name": task.name,
        "title": task.title or task.name,
        "description": task.description,
        "output_kinds": list(task.output_kinds),
        "default_model": task.default_model,
        "input_schema": task.json_schema(),
    }


@router.get("", response_model=list[TaskOut])
def list_tasks() -> list[dict]:
    return [task_out(t) for _, t in sorted(plugins.all_tasks().items())]


@router.get("/{name}", response_model=TaskOut, responses={404: {"description": "No such task"}})
def get_task(name: str) -> dict:
    try:
        return task_out(plugins.get_task(name))
    except KeyError as exc:
        raise HTTPException(404, str(exc.args[0])) from None
