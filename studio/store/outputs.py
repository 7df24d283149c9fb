"""Where job outputs live: ``<root>/<YYYY-MM-DD>/<job-id>/``, written through a staging folder.

A job writes into ``<root>/.staging/<job-id>-<pid>-<n>/`` and the folder is renamed into place only
when the job succeeds, so a failed, canceled or killed job never leaves files under its final name.
The date is the job's creation date (UTC), so a requeued job lands in the same folder.
"""

from __future__ import annotations

import itertools
import os
import shutil
import time
from pathlib import Path

STAGING = ".staging"
_counter = itertools.count()


class OutputStore:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def final_dir(self, job_id: str, created_at: float | None = None) -> Path:
        day = time.strftime("%Y-%m-%d", time.gmtime(created_at if created_at is not None else time.time()))
        return self.root / day / job_id

    def staging_dir(self, job_id: str) -> Path:
        path = self.root / STAGING / f"{job_id}-{os.getpid()}-{next(_counter)}"
        path.mkdir(parents=True, exist_ok=False)
        return path

    def commit(self, staging: Path, final: Path) -> Path:
        """Rename ``staging`` to ``final``; a leftover ``final`` (an earlier attempt) is replaced."""
        final.parent.mkdir(parents=True, exist_ok=True)
        if final.exists():
            # park the old folder first so the rename below is the single visible switch
            trash = self.root / STAGING / f"old-{final.name}-{os.getpid()}-{next(_counter)}"
            os.replace(final, trash)
            shutil.rmtree(trash, ignore_errors=True)
        os.replace(staging, final)
        return final

    def discard(self, staging: Path) -> None:
        shutil.rmtree(staging, ignore_errors=True)

    def discard_for(self, job_id: str, pid: int) -> None:
        """Remove what a killed worker process ``pid`` had staged for ``job_id``."""
        base = self.root / STAGING
        for entry in base.glob(f"{job_id}-{pid}-*") if base.exists() else ():
            shutil.rmtree(entry, ignore_errors=True)

    def sweep_dead(self) -> int:
        """Remove staging folders whose writing process is gone (coordinator start-up)."""
        base = self.root / STAGING
        if not base.exists():
            return 0
        removed = 0
        for entry in base.iterdir():
            parts = entry.name.rsplit("-", 2)
            pid = int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None
            if pid is None or not _alive(pid):
                shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
                removed += 1
        return removed

    def relative(self, path: Path) -> str:
        return Path(path).resolve().relative_to(self.root.resolve()).as_posix()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped by its new parent) writes nothing more
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True
