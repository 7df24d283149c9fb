"""The coordinator: one dispatcher thread that owns the workers and writes job state.

Each turn of the loop: 1. wait for worker messages (or a wake-up from a submit), 2. write them to
the job table in one transaction, 3. handle dead workers (requeue their job with the same seed),
4. deliver cancel requests and kill workers that ignore them past the grace period, 5. kill workers
whose heartbeat expired, 6. hand queued jobs to idle workers in run order.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from studio.jobs.db import JobDB, row_to_job
from studio.jobs.errors import CoordinatorLocked
from studio.jobs.executor import Executor, LocalExecutor, Slot, WorkerConfig, devices_for
from studio.jobs.queue import RUN_ORDER, JobQueue
from studio.store.outputs import OutputStore

log = logging.getLogger(__name__)

POLL_S = 0.05  # how soon a job submitted by another process (CLI, second API process) is seen


class JobService:
    def __init__(self, db_path: str | os.PathLike, outputs_dir: str | os.PathLike, executor: str = "local",
                 workers: int = 1, device: str = "cpu", ray_address: str | None = None,
                 cancel_grace_s: float = 10.0, heartbeat_timeout_s: float = 60.0,
                 cache_budget_mb: int = 4096, dtype: str = "float32", max_attempts: int = 5,
                 heartbeat_s: float = 1.0, preload_plugins: bool = False):
        if executor not in ("local", "ray"):
            raise ValueError(f"executor: expected 'local' or 'ray', got {executor!r}")
        self.db_path = Path(db_path)
        self.outputs_dir = Path(outputs_dir)
        self.executor_kind = executor
        self.devices = devices_for(device, workers)
        self.ray_address = ray_address
        self.cancel_grace_s = cancel_grace_s
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.max_attempts = max_attempts
        self.config = WorkerConfig(
            outputs_dir=str(self.outputs_dir), dtype=dtype, cache_budget_bytes=int(cache_budget_mb) << 20,
            heartbeat_s=heartbeat_s, extra_tasks=os.environ.get("STUDIO_EXTRA_TASKS", ""),
            sys_path=tuple(sys.path), preload=preload_plugins,
        )
        self.db = JobDB(self.db_path)
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self.queue = JobQueue(self.db, on_change=self.wake)
        self.store = OutputStore(self.outputs_dir)
        self.executor: Executor | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._lock_file = None

    # ---- lifecycle

    def start(self) -> "JobService":
        self._take_lock()
        self.outputs_dir.mkdir(parents=True, exist_ok=True)
        self._recover()
        self.store.sweep_dead()  # what workers of a dead coordinator had half-written
        self.executor = self._make_executor()
        self.executor.start()
        self._stopping.clear()
        self._thread = threading.Thread(target=self._loop, name="studio-dispatcher", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self.wake()
        if self._thread is not None:
            self._thread.join(10)
        if self.executor is not None:
            self.executor.stop()
        # jobs still running were cut short by this stop: back to the queue, same seed
        self._recover(reason="coordinator stopped")
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def __enter__(self) -> "JobService":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except (BlockingIOError, OSError):
            pass  # the pipe is full: the dispatcher is already due to wake

    def workers_info(self) -> list[dict[str, Any]]:
        slots = self.executor.slots if self.executor else []
        return [{"name": s.name, "device": s.device, "ready": s.ready, "pid": s.pid,
                 "job_id": s.job["id"] if s.job else None} for s in slots]

    def _take_lock(self) -> None:
        path = self.db_path.with_name(self.db_path.name + ".coordinator.lock")
        path.parent.mkdir(parents=True, exist_ok=True)
        f = open(path, "a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            raise CoordinatorLocked(f"another coordinator already runs on {self.db_path} (lock {path})") from None
        self._lock_file = f

    def _make_executor(self) -> Executor:
        if self.executor_kind == "ray":
            from studio.jobs.ray_executor import RayExecutor

            return RayExecutor(self.config, self.devices, address=self.ray_address)
        return LocalExecutor(self.config, self.devices)

    # ---- recovery

    def _recover(self, reason: str = "coordinator restarted") -> None:
        """Jobs left ``running`` by a previous (dead) coordinator go back to the queue, same seed."""
        now = time.time()
        with self.db.write() as conn:
            rows = conn.execute("SELECT * FROM jobs WHERE status = 'running'").fetchall()
            for row in rows:
                self._requeue(conn, row_to_job(row), reason, now)

    def _requeue(self, conn, job: dict[str, Any], reason: str, now: float) -> None:
        if job["cancel_requested"]:
            self._finish(conn, job["id"], "canceled", now, message="canceled")
            return
        if job["attempt"] >= self.max_attempts:
            error = {"type": "WorkerDied", "message": f"{reason}; gave up after {job['attempt']} attempts",
                     "traceback": ""}
            self._finish(conn, job["id"], "failed", now, error=error, message=error["message"])
            return
        attempt = job["attempt"] + 1
        conn.execute(
            "UPDATE jobs SET status = 'queued', attempt = ?, worker = NULL, heartbeat = NULL, progress = 0,"
            " message = ?, started_at = NULL WHERE id = ?",
            (attempt, f"requeued: {reason}", job["id"]),
        )
        self.db.add_event(conn, job["id"], "requeued", {"reason": reason, "attempt": attempt}, now)

    def _finish(self, conn, job_id: str, status: str, now: float, result: Any = None, error: Any = None,
                message: str = "") -> None:
        conn.execute(
            "UPDATE jobs SET status = ?, finished_at = ?, result = ?, error = ?, message = ?,"
            " progress = CASE WHEN ? = 'succeeded' THEN 1 ELSE progress END WHERE id = ?",
            (status, now, _dump(result), _dump(error), message, status, job_id),
        )
        data = {"result": result} if status == "succeeded" else {"error": error} if status == "failed" else {}
        self.db.add_event(conn, job_id, status, data, now)

    # ---- the loop

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self._turn()
            except Exception:  # the dispatcher must outlive any one bad turn
                log.exception("dispatcher turn failed")
                time.sleep(0.2)

    def _turn(self) -> None:
        assert self.executor is not None
        messages = self.executor.poll(POLL_S, self._wake_r)
        now = time.time()
        with self.db.write() as conn:
            for slot, msg in messages:
                self._apply(conn, slot, msg, now)
            self._deliver_cancels(conn, now)
            self._expire_heartbeats(conn, now)
            assignments = self._dispatch(conn, now)
        # sent after the commit: a worker never runs a job the table does not show as running
        for slot, payload in assignments:
            self.executor.assign(slot, payload)

    def _apply(self, conn, slot: Slot, msg: dict[str, Any], now: float) -> None:
        kind = msg["kind"]
        if kind == "ready":
            slot.ready, slot.pid = True, msg.get("pid", slot.pid)
            return
        if kind == "died":
            self._worker_lost(conn, slot, f"worker {slot.name} died (exit code {msg.get('exitcode')})", now)
            return
        job = slot.job
        if job is None or msg.get("job_id") != job["id"]:
            return  # a late message about a job this slot no longer holds
        job_id = job["id"]
        if kind == "started":
            conn.execute("UPDATE jobs SET started_at = ?, heartbeat = ? WHERE id = ?", (msg["t"], now, job_id))
            self.db.add_event(conn, job_id, "started", {"worker": slot.name, "attempt": job["attempt"]}, now)
        elif kind == "heartbeat":
            conn.execute("UPDATE jobs SET heartbeat = ? WHERE id = ?", (now, job_id))
        elif kind == "progress":
            conn.execute("UPDATE jobs SET progress = ?, message = ?, heartbeat = ? WHERE id = ?",
                         (msg["progress"], msg.get("message", ""), now, job_id))
            data = {"progress": msg["progress"], "message": msg.get("message", "")}
            if msg.get("preview"):
                data["preview"] = msg["preview"]
            self.db.add_event(conn, job_id, "progress", data, now)
        elif kind in ("succeeded", "failed", "canceled"):
            error = msg.get("error")
            message = {"succeeded": "done", "canceled": "canceled"}.get(kind) or (error or {}).get("message", "")
            self._finish(conn, job_id, kind, now, result=msg.get("result"), error=error, message=message)
            slot.job, slot.cancel_deadline = None, None

    def _worker_lost(self, conn, slot: Slot, reason: str, now: float) -> None:
        """A worker died or was killed: requeue (or cancel) its job, clean its staging, start a new one."""
        job, old_pid = slot.job, slot.pid
        if job is not None:
            current = row_to_job(conn.execute("SELECT * FROM jobs WHERE id = ?", (job["id"],)).fetchone())
            if current is not None and current["status"] == "running":
                self._requeue(conn, current, reason, now)
            if old_pid:
                self.store.discard_for(job["id"], old_pid)
        if hasattr(self.executor, "respawn"):
            self.executor.respawn(slot)  # type: ignore[union-attr]

    def _deliver_cancels(self, conn, now: float) -> None:
        assert self.executor is not None
        busy = {s.job["id"]: s for s in self.executor.slots if s.job is not None}
        if not busy:
            return
        rows = conn.execute(
            f"SELECT id FROM jobs WHERE status = 'running' AND cancel_requested = 1 AND id IN ({','.join('?' * len(busy))})",
            tuple(busy),
        ).fetchall()
        for (job_id,) in rows:
            slot = busy[job_id]
            if slot.cancel_deadline is None:
                self.executor.cancel(slot, job_id)
                slot.cancel_deadline = now + self.cancel_grace_s
            elif now >= slot.cancel_deadline:
                log.warning("job %s ignored its cancel for %.1fs: killing worker %s", job_id, self.cancel_grace_s, slot.name)
                old_pid = slot.pid
                self._finish(conn, job_id, "canceled", now, message="canceled (worker killed after grace period)")
                slot.job = None
                self.executor.kill(slot)
                if old_pid:
                    self.store.discard_for(job_id, old_pid)

    def _expire_heartbeats(self, conn, now: float) -> None:
        assert self.executor is not None
        for slot in self.executor.slots:
            if slot.job is None:
                continue
            row = conn.execute("SELECT heartbeat FROM jobs WHERE id = ?", (slot.job["id"],)).fetchone()
            if row is not None and row[0] is not None and now - row[0] > self.heartbeat_timeout_s:
                job, old_pid = slot.job, slot.pid
                current = row_to_job(conn.execute("SELECT * FROM jobs WHERE id = ?", (job["id"],)).fetchone())
                self._requeue(conn, current, f"heartbeat of worker {slot.name} expired", now)
                slot.job = None
                self.executor.kill(slot)
                if old_pid:
                    self.store.discard_for(job["id"], old_pid)

    def _dispatch(self, conn, now: float) -> list[tuple[Slot, dict[str, Any]]]:
        assert self.executor is not None
        idle = [s for s in self.executor.slots if s.ready and s.job is None]
        if not idle or self.db.get_meta("paused", "0") == "1":
            return []
        assignments = []
        rows = conn.execute(
            f"SELECT * FROM jobs WHERE status = 'queued' ORDER BY {RUN_ORDER} LIMIT ?", (len(idle),)
        ).fetchall()
        for slot, row in zip(idle, rows):
            job = row_to_job(row)
            conn.execute(
                "UPDATE jobs SET status = 'running', worker = ?, heartbeat = ?, cancel_requested = 0,"
                " message = 'starting' WHERE id = ?", (slot.name, now, job["id"]))
            payload = {k: job[k] for k in ("id", "task", "spec", "seed", "attempt", "created_at")}
            slot.job = payload  # reserved now; the executor sends it after the commit
            assignments.append((slot, payload))
        return assignments


def _dump(obj: Any) -> str | None:
    return None if obj is None else json.dumps(obj, separators=(",", ":"))
