"""Checkpoint folders: ``<output_dir>/checkpoints/step_00000100``, written atomically, last K kept.

The content of a folder is accelerate's ``save_state`` (model, optimizer, per-process RNG states,
registered objects: LR scheduler, EMA, data position + step) plus a human-readable
``trainer_state.json``. A folder only appears under its final name once every process finished
writing it, so a crash mid-save leaves the previous checkpoint as the latest.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

_STEP_DIR = re.compile(r"^step_(\d+)$")


def checkpoints_dir(output_dir: Path) -> Path:
    return Path(output_dir) / "checkpoints"


def step_dir_name(step: int) -> str:
    return f"step_{step:08d}"


def staging_dir(output_dir: Path, step: int) -> Path:
    return checkpoints_dir(output_dir) / f".{step_dir_name(step)}.tmp"


def list_checkpoints(output_dir: Path) -> list[tuple[int, Path]]:
    """Finished checkpoints, oldest first."""
    root = checkpoints_dir(output_dir)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := _STEP_DIR.match(p.name))]
    return sorted(found)


def latest_checkpoint(output_dir: Path) -> Path | None:
    found = list_checkpoints(output_dir)
    return found[-1][1] if found else None


def resolve_resume(output_dir: Path, resume: str | None) -> Path | None:
    """``"latest"`` → newest finished checkpoint (None on a fresh output dir); a path → that folder."""
    if resume is None:
        return None
    if resume == "latest":
        return latest_checkpoint(output_dir)
    p = Path(resume)
    if not p.is_dir():
        raise FileNotFoundError(f"resume: checkpoint folder {p} does not exist")
    return p


def publish(output_dir: Path, step: int, keep: int) -> Path:
    """Rename the staging folder of ``step`` to its final name and prune to the last ``keep``."""
    final = checkpoints_dir(output_dir) / step_dir_name(step)
    if final.exists():
        shutil.rmtree(final)
    staging_dir(output_dir, step).rename(final)
    for _, old in list_checkpoints(output_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final
