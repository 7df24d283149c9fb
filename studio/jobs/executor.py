"""The executor interface the coordinator drives, and the local one: spawned worker processes.

An executor owns ``slots`` (one worker each: a process, or a Ray actor). The coordinator
``assign``s a job to an idle ready slot, asks for a cooperative ``cancel``, ``kill``s a slot whose
job does not stop (a fresh worker replaces it) and ``poll``s for worker messages, which include
``ready`` (a worker can take jobs) and ``died`` (its process is gone).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import select
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

JOB_ID_BYTES = 32


@dataclass
class Slot:
    index: int
    name: str
    device: str
    ready: bool = False
    job: dict[str, Any] | None = None
    pid: int | None = None
    cancel_deadline: float | None = None
    handle: Any = None  # the executor's own state for this slot
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class WorkerConfig:
    outputs_dir: str
    dtype: str = "float32"
    cache_budget_bytes: int = 4 << 30
    heartbeat_s: float = 1.0
    extra_tasks: str = ""
    sys_path: tuple[str, ...] = ()
    preload: bool = False  # import every plugin at start: a faster first job, but ~250 MB more idle memory (torch)


def devices_for(device: str, workers: int) -> list[str]:
    """One worker per device: ``cuda`` with N workers → cuda:0..N-1; ``cpu`` repeats."""
    if workers < 1:
        raise ValueError(f"workers: must be >= 1, got {workers}")
    if device == "cuda" and workers > 1:
        return [f"cuda:{i}" for i in range(workers)]
    return [device] * workers


class Executor:
    slots: list[Slot]

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def assign(self, slot: Slot, job: dict[str, Any]) -> None: ...
    def cancel(self, slot: Slot, job_id: str) -> None: ...
    def kill(self, slot: Slot) -> None: ...
    def poll(self, timeout: float, wake_fd: int | None = None) -> list[tuple[Slot, dict[str, Any]]]: ...


# ---------------------------------------------------------------------------------------------
# local: multiprocessing spawn workers, one duplex pipe each


def _worker_main(conn: Connection, cancel_buf: Any, config: WorkerConfig, device: str, parent_pid: int) -> None:
    """Entry point of a local worker process (spawned: a clean interpreter, no inherited locks)."""
    import sys

    for p in config.sys_path:
        if p not in sys.path:
            sys.path.append(p)
    if config.extra_tasks:
        os.environ["STUDIO_EXTRA_TASKS"] = config.extra_tasks
    lock = threading.Lock()

    def send(msg: dict[str, Any]) -> None:
        with lock:
            conn.send(msg)

    def orphan_watch() -> None:
        # a killed coordinator must not leave workers finishing jobs the next coordinator requeues
        while True:
            if os.getppid() != parent_pid:
                os._exit(0)
            time.sleep(0.5)

    threading.Thread(target=orphan_watch, daemon=True).start()
    from studio.jobs.plugins import all_tasks
    from studio.jobs.worker import JobWorker

    if config.preload:
        all_tasks()  # import plugins before the first job so its start is not an import
    worker = JobWorker(config.outputs_dir, device, config.dtype, config.cache_budget_bytes, config.heartbeat_s)
    send({"kind": "ready", "pid": os.getpid(), "t": time.time()})
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            os._exit(0)
        if job is None:
            return
        job_id = job["id"].encode()
        worker.execute(job, send, lambda: cancel_buf.raw[:len(job_id)] == job_id)


class LocalExecutor(Executor):
    def __init__(self, config: WorkerConfig, devices: list[str]):
        self.config = config
        self.ctx = mp.get_context("spawn")
        self.slots = [Slot(i, f"local-{i}", d) for i, d in enumerate(devices)]

    def start(self) -> None:
        for slot in self.slots:
            self._spawn(slot)

    def _spawn(self, slot: Slot) -> None:
        parent, child = self.ctx.Pipe(duplex=True)
        cancel_buf = self.ctx.RawArray("c", JOB_ID_BYTES)
        proc = self.ctx.Process(target=_worker_main, args=(child, cancel_buf, self.config, slot.device, os.getpid()),
                                name=f"studio-{slot.name}", daemon=True)
        proc.start()
        child.close()
        slot.handle = {"proc": proc, "conn": parent, "cancel": cancel_buf}
        slot.ready, slot.job, slot.pid, slot.cancel_deadline = False, None, proc.pid, None

    def assign(self, slot: Slot, job: dict[str, Any]) -> None:
        slot.job = job
        slot.handle["conn"].send(job)

    def cancel(self, slot: Slot, job_id: str) -> None:
        slot.handle["cancel"].raw = job_id.encode()[:JOB_ID_BYTES].ljust(JOB_ID_BYTES, b"\0")

    def kill(self, slot: Slot) -> None:
        """Kill the worker (SIGKILL) and start a fresh one in its place."""
        proc = slot.handle["proc"]
        if proc.is_alive():
            proc.kill()
        proc.join(5)
        slot.handle["conn"].close()
        self._spawn(slot)

    def poll(self, timeout: float, wake_fd: int | None = None) -> list[tuple[Slot, dict[str, Any]]]:
        by_conn = {s.handle["conn"]: s for s in self.slots}
        sentinels = {s.handle["proc"].sentinel: s for s in self.slots}
        waitables: list[Any] = [*by_conn, *sentinels]
        if wake_fd is not None:
            waitables.append(wake_fd)
        ready = wait(waitables, timeout)
        out: list[tuple[Slot, dict[str, Any]]] = []
        if wake_fd is not None and wake_fd in ready:
            _drain(wake_fd)
        died: list[Slot] = []
        for obj in ready:
            slot = by_conn.get(obj)
            if slot is not None:
                out.extend(self._drain_conn(slot))
            elif obj in sentinels:
                died.append(sentinels[obj])
        for slot in died:
            out.extend(self._drain_conn(slot))  # its last words (a result sent just before exiting)
            out.append((slot, {"kind": "died", "pid": slot.pid, "t": time.time(),
                               "exitcode": slot.handle["proc"].exitcode}))
        return out

    def _drain_conn(self, slot: Slot) -> list[tuple[Slot, dict[str, Any]]]:
        conn, out = slot.handle["conn"], []
        try:
            while conn.poll():
                out.append((slot, conn.recv()))
        except (EOFError, OSError):
            pass
        return out

    def respawn(self, slot: Slot) -> None:
        try:
            slot.handle["conn"].close()
        except OSError:
            pass
        self._spawn(slot)

    def stop(self) -> None:
        for slot in self.slots:
            try:
                slot.handle["conn"].send(None)
            except (OSError, ValueError):
                pass
        deadline = time.time() + 3
        for slot in self.slots:
            proc = slot.handle["proc"]
            proc.join(max(0.0, deadline - time.time()))
            if proc.is_alive():
                proc.kill()
                proc.join(2)
            slot.handle["conn"].close()


def _drain(fd: int) -> None:
    try:
        while select.select([fd], [], [], 0)[0]:
            if not os.read(fd, 4096):
                return
    except (BlockingIOError, OSError):
        pass
