"""Queue operations on the job table: submit, list, cancel, retry, reorder, pause, prune, events.

Inputs are validated with the task's own ``validate()`` before anything is stored, so a bad
request never becomes a job. Run order: ``priority`` descending, then ``position`` ascending.
"""

from __future__ import annotations

import secrets
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterable

from studio.jobs.db import FINISHED, STATUSES, JobDB, row_to_event, row_to_job
from studio.jobs.errors import BatchItemError, JobNotFound, JobStateError

RUN_ORDER = "priority DESC, position ASC"


def new_seed() -> int:
    return secrets.randbelow(2**31)


def validate_inputs(task_name: str, inputs: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """Validated inputs (JSON-ready, seed filled in) and the seed; raises before anything is stored."""
    from studio.jobs.plugins import get_task

    if not isinstance(inputs, dict):
        raise TypeError(f"inputs must be a mapping, got {type(inputs).__name__}")
    task = get_task(task_name)
    validated = task.validate(dict(inputs))
    spec = validated.model_dump(mode="json")
    seed = spec.get("seed")
    if seed is None:
        seed = new_seed()
    spec["seed"] = int(seed)
    return spec, int(seed)


class JobQueue:
    def __init__(self, db_path: str | Path, on_change: Callable[[], None] | None = None):
        self.db = db_path if isinstance(db_path, JobDB) else JobDB(db_path)
        self.on_change = on_change  # the service's dispatcher wake-up

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    # ---- submit

    def submit(self, task: str, inputs: dict[str, Any], priority: int = 0) -> dict[str, Any]:
        return self.submit_many([{"task": task, "inputs": inputs, "priority": priority}], _single=True)[0]

    def submit_many(self, items: Iterable[dict[str, Any]], _single: bool = False) -> list[dict[str, Any]]:
        prepared = []
        for index, item in enumerate(items):
            try:
                spec, seed = validate_inputs(item["task"], item.get("inputs") or {})
                priority = int(item.get("priority", 0) or 0)
            except Exception as exc:
                if _single:
                    raise
                raise BatchItemError(index, exc) from exc
            prepared.append((item["task"], spec, seed, priority))
        ids = []
        now = time.time()
        with self.db.write() as conn:
            position = self._max_position(conn) + 1.0
            for task, spec, seed, priority in prepared:
                job_id = uuid.uuid4().hex
                conn.execute(
                    "INSERT INTO jobs (id, task, status, priority, position, spec, seed, created_at)"
                    " VALUES (?, ?, 'queued', ?, ?, ?, ?, ?)",
                    (job_id, task, priority, position, _dumps(spec), seed, now),
                )
                self.db.add_event(conn, job_id, "submitted", {"task": task, "priority": priority}, now)
                ids.append(job_id)
                position += 1.0
        self._changed()
        return [self.get(i) for i in ids]

    @staticmethod
    def _max_position(conn) -> float:
        return float(conn.execute("SELECT COALESCE(MAX(position), 0) FROM jobs").fetchone()[0])

    # ---- read

    def get(self, job_id: str) -> dict[str, Any]:
        job = row_to_job(self.db.conn().execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone())
        if job is None:
            raise JobNotFound(job_id)
        return job

    def list(self, status: str | list[str] | None = None, task: str | None = None, limit: int = 100,
             offset: int = 0) -> list[dict[str, Any]]:
        where, args = [], []
        statuses = [status] if isinstance(status, str) else list(status or [])
        for s in statuses:
            if s not in STATUSES:
                raise ValueError(f"status: unknown status {s!r}; one of {', '.join(STATUSES)}")
        if statuses:
            where.append(f"status IN ({','.join('?' * len(statuses))})")
            args += statuses
        if task:
            where.append("task = ?")
            args.append(task)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        # queued first in run order, then running, then history newest first
        order = ("CASE status WHEN 'queued' THEN 0 WHEN 'running' THEN 1 ELSE 2 END,"
                 " CASE WHEN status = 'queued' THEN -priority ELSE 0 END,"
                 " CASE WHEN status = 'queued' THEN position ELSE -created_at END")
        rows = self.db.conn().execute(
            f"SELECT * FROM jobs {clause} ORDER BY {order} LIMIT ? OFFSET ?", (*args, int(limit), int(offset))
        ).fetchall()
        return [row_to_job(r) for r in rows]

    def position(self, job_id: str) -> int | None:
        job = self.get(job_id)
        if job["status"] != "queued":
            return None
        (ahead,) = self.db.conn().execute(
            "SELECT COUNT(*) FROM jobs WHERE status = 'queued' AND (priority > ? OR (priority = ? AND position < ?))",
            (job["priority"], job["priority"], job["position"]),
        ).fetchone()
        return int(ahead)

    def counts(self) -> dict[str, int]:
        rows = self.db.conn().execute("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetchall()
        return {s: 0 for s in STATUSES} | {r[0]: int(r[1]) for r in rows}

    def events(self, after_id: int = 0, job_id: str | None = None, limit: int = 500) -> list[dict[str, Any]]:
        if job_id is None:
            rows = self.db.conn().execute(
                "SELECT * FROM events WHERE id > ? ORDER BY id LIMIT ?", (int(after_id), int(limit))
            ).fetchall()
        else:
            rows = self.db.conn().execute(
                "SELECT * FROM events WHERE id > ? AND job_id = ? ORDER BY id LIMIT ?",
                (int(after_id), job_id, int(limit)),
            ).fetchall()
        return [row_to_event(r) for r in rows]

    # ---- change

    def cancel(self, job_id: str) -> dict[str, Any]:
        now = time.time()
        with self.db.write() as conn:
            job = self._locked_get(conn, job_id)
            if job["status"] == "queued":
                conn.execute("UPDATE jobs SET status = 'canceled', finished_at = ?, message = 'canceled' WHERE id = ?",
                             (now, job_id))
                self.db.add_event(conn, job_id, "canceled", {}, now)
            elif job["status"] == "running":
                if not job["cancel_requested"]:
                    conn.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ?", (job_id,))
                    self.db.add_event(conn, job_id, "cancel_requested", {}, now)
            else:
                raise JobStateError(f"job {job_id} is already {job['status']}")
        self._changed()
        return self.get(job_id)

    def retry(self, job_id: str) -> dict[str, Any]:
        now = time.time()
        with self.db.write() as conn:
            job = self._locked_get(conn, job_id)
            if job["status"] not in ("failed", "canceled"):
                raise JobStateError(f"only failed or canceled jobs can be retried; job {job_id} is {job['status']}")
            attempt = job["attempt"] + 1
            conn.execute(
                "UPDATE jobs SET status = 'queued', attempt = ?, position = ?, progress = 0, message = '',"
                " result = NULL, error = NULL, worker = NULL, heartbeat = NULL, cancel_requested = 0,"
                " started_at = NULL, finished_at = NULL WHERE id = ?",
                (attempt, self._max_position(conn) + 1.0, job_id),
            )
            self.db.add_event(conn, job_id, "retried", {"attempt": attempt}, now)
        self._changed()
        return self.get(job_id)

    def move(self, job_id: str, to: str | int) -> dict[str, Any]:
        now = time.time()
        with self.db.write() as conn:
            job = self._locked_get(conn, job_id)
            if job["status"] != "queued":
                raise JobStateError(f"only queued jobs can be moved; job {job_id} is {job['status']}")
            order = [row_to_job(r) for r in conn.execute(
                f"SELECT id, priority, position FROM jobs WHERE status = 'queued' AND id != ? ORDER BY {RUN_ORDER}",
                (job_id,)).fetchall()]
            index = _target_index(to, len(order))
            if to == "front" and order:
                priority = max(job["priority"], order[0]["priority"])
            elif index < len(order):
                priority = order[index]["priority"]
            elif order:
                priority = order[-1]["priority"]
            else:
                priority = job["priority"]
            # renumber the queued jobs of that priority so positions stay simple increasing numbers
            same = [o["id"] for o in order if o["priority"] == priority]
            before = sum(1 for o in order[:index] if o["priority"] == priority)
            same.insert(before, job_id)
            base = float(conn.execute("SELECT COALESCE(MIN(position), 0) FROM jobs").fetchone()[0]) - len(same) - 1
            for i, jid in enumerate(same):
                conn.execute("UPDATE jobs SET position = ? WHERE id = ?", (base + i, jid))
            conn.execute("UPDATE jobs SET priority = ? WHERE id = ?", (priority, job_id))
            self.db.add_event(conn, job_id, "moved", {"position": index}, now)
        self._changed()
        return self.get(job_id)

    def pause(self) -> None:
        self._set_paused(True)

    def resume(self) -> None:
        self._set_paused(False)

    def is_paused(self) -> bool:
        return self.db.get_meta("paused", "0") == "1"

    def _set_paused(self, paused: bool) -> None:
        with self.db.write() as conn:
            self.db.set_meta(conn, "paused", "1" if paused else "0")
            self.db.add_event(conn, None, "paused" if paused else "resumed", {}, time.time())
        self._changed()

    def delete(self, job_id: str) -> None:
        with self.db.write() as conn:
            job = self._locked_get(conn, job_id)
            if job["status"] not in FINISHED:
                raise JobStateError(f"only finished jobs can be deleted; job {job_id} is {job['status']} (cancel it first)")
            conn.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
            conn.execute("DELETE FROM events WHERE job_id = ?", (job_id,))
            self.db.add_event(conn, job_id, "deleted", {}, time.time())

    def prune(self, keep_last: int | None = None, older_than: float | None = None) -> int:
        if keep_last is None and older_than is None:
            raise ValueError("prune: give keep_last and/or older_than")
        if keep_last is not None and keep_last < 0:
            raise ValueError(f"keep_last: must be >= 0, got {keep_last}")
        if older_than is not None and older_than < 0:
            raise ValueError(f"older_than: must be >= 0 seconds, got {older_than}")
        finished = ",".join(f"'{s}'" for s in FINISHED)
        with self.db.write() as conn:
            rows = conn.execute(
                f"SELECT id, finished_at FROM jobs WHERE status IN ({finished}) ORDER BY finished_at DESC, created_at DESC"
            ).fetchall()
            cutoff = time.time() - older_than if older_than is not None else None
            doomed = [r["id"] for i, r in enumerate(rows)
                      if (keep_last is not None and i >= keep_last)
                      or (cutoff is not None and (r["finished_at"] or 0) < cutoff)]
            for jid in doomed:
                conn.execute("DELETE FROM jobs WHERE id = ?", (jid,))
                conn.execute("DELETE FROM events WHERE job_id = ?", (jid,))
        return len(doomed)

    def _locked_get(self, conn, job_id: str) -> dict[str, Any]:
        job = row_to_job(conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone())
        if job is None:
            raise JobNotFound(job_id)
        return job


def _target_index(to: str | int, n_others: int) -> int:
    if to == "front":
        return 0
    if to == "back":
        return n_others
    if isinstance(to, bool) or not isinstance(to, int):
        try:
            to = int(to)
        except (TypeError, ValueError):
            raise ValueError(f"to: expected 'front', 'back' or an index, got {to!r}") from None
    if to < 0:
        raise ValueError(f"to: index must be >= 0, got {to}")
    return min(to, n_others)


def _dumps(obj: Any) -> str:
    import json

    return json.dumps(obj, separators=(",", ":"), sort_keys=True)
