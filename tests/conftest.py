"""Shared fixtures: the test task (``test_gradient``) visible to this process and to every worker
process, and isolated state/outputs folders per test."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXTRA_TASKS = "tests.fixtures_tasks:GradientTask"

# spawned workers, Ray actors and `studio` subprocesses import the test task by this name
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture
def gradient_task(monkeypatch):
    """Registers ``test_gradient`` here and names it for worker processes; yields the task object."""
    from studio.jobs.plugins import load_extra_tasks
    from studio.tasks.registry import get_task

    monkeypatch.setenv("STUDIO_EXTRA_TASKS", EXTRA_TASKS)
    load_extra_tasks(EXTRA_TASKS)
    return get_task("test_gradient")


@pytest.fixture
def studio_dirs(tmp_path, monkeypatch):
    """Fresh ``outputs/`` and state folders, also exported as STUDIO_OUTPUTS / STUDIO_STATE."""
    outputs, state = tmp_path / "outputs", tmp_path / "state"
    outputs.mkdir()
    state.mkdir()
    monkeypatch.setenv("STUDIO_OUTPUTS", str(outputs))
    monkeypatch.setenv("STUDIO_STATE", str(state))
    return {"outputs": outputs, "state": state, "db": state / "jobs.db"}
