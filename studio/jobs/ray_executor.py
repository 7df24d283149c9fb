"""Ray executor: one actor per device, on an existing cluster (``ray.init(address=...)``) or a local one.

The job table stays on the coordinator. Each actor runs the same ``JobWorker`` as a local worker
process; its progress, heartbeat and start messages travel through a ``ray.util.queue.Queue``, the
final message is the return value of ``run``. Actors are threaded (``max_concurrency=2``) so a
``cancel`` call reaches a running job; a stuck actor is ``ray.kill``ed and replaced.
"""

from __future__ import annotations

import os
import select
import threading
import time
from typing import Any

from studio.jobs.executor import Executor, Slot, WorkerConfig

FINAL = ("succeeded", "failed", "canceled")


class _RayWorker:
    """The actor body (wrapped with ``ray.remote`` at start, so importing this module needs no Ray)."""

    def __init__(self, config: WorkerConfig, device: str, messages: Any):
        import sys

        for p in config.sys_path:
            if p not in sys.path:
                sys.path.append(p)
        if config.extra_tasks:
            os.environ["STUDIO_EXTRA_TASKS"] = config.extra_tasks
        from studio.jobs.plugins import all_tasks
        from studio.jobs.worker import JobWorker

        if config.preload:
            all_tasks()
        self.worker = JobWorker(config.outputs_dir, device, config.dtype, config.cache_budget_bytes, config.heartbeat_s)
        self.messages = messages
        self.cancel_id: str | None = None
        self.lock = threading.Lock()

    def ready(self) -> int:
        return os.getpid()

    def cancel(self, job_id: str) -> None:
        self.cancel_id = job_id

    def run(self, job: dict[str, Any]) -> dict[str, Any]:
        def send(msg: dict[str, Any]) -> None:
            if msg["kind"] in FINAL:
                return  # the final message is run()'s return value
            with self.lock:
                self.messages.put(msg)

        return self.worker.execute(job, send, lambda: self.cancel_id == job["id"])


class RayExecutor(Executor):
    def __init__(self, config: WorkerConfig, devices: list[str], address: str | None = None):
        self.config = config
        self.address = address
        self.slots = [Slot(i, f"ray-{i}", d) for i, d in enumerate(devices)]
        self._owns_ray = False

    def start(self) -> None:
        try:
            import ray
            from ray.util.queue import Queue
        except ImportError as exc:
            raise RuntimeError(f"the Ray executor needs Ray: pip install -e '.[distributed]' ({exc})") from None
        if not ray.is_initialized():
            if self.address:
                ray.init(address=self.address, log_to_driver=False)
            else:
                ray.init(num_cpus=max(2, len(self.slots)), include_dashboard=False, log_to_driver=False)
                self._owns_ray = True
        self._ray = ray
        self._actor_cls = ray.remote(_RayWorker)
        self.messages = Queue()
        for slot in self.slots:
            self._spawn(slot)

    def _spawn(self, slot: Slot) -> None:
        gpus = 1 if slot.device.startswith("cuda") else 0
        actor = self._actor_cls.options(num_cpus=1 if not gpus else 0, num_gpus=gpus, max_concurrency=2,
                                        name=None).remote(self.config, slot.device, self.messages)
        slot.handle = {"actor": actor, "ready_ref": actor.ready.remote(), "run_ref": None}
        slot.ready, slot.job, slot.pid, slot.cancel_deadline = False, None, None, None

    def assign(self, slot: Slot, job: dict[str, Any]) -> None:
        slot.job = job
        slot.handle["run_ref"] = slot.handle["actor"].run.remote(job)

    def cancel(self, slot: Slot, job_id: str) -> None:
        slot.handle["actor"].cancel.remote(job_id)

    def kill(self, slot: Slot) -> None:
        self._ray.kill(slot.handle["actor"], no_restart=True)
        self._spawn(slot)

    def respawn(self, slot: Slot) -> None:
        try:
            self._ray.kill(slot.handle["actor"], no_restart=True)
        except Exception:
            pass
        self._spawn(slot)

    def poll(self, timeout: float, wake_fd: int | None = None) -> list[tuple[Slot, dict[str, Any]]]:
        deadline = time.monotonic() + timeout
        while True:
            out = self._collect()
            if out or time.monotonic() >= deadline:
                return out
            # short naps: the queue is an actor, it cannot wake a select()
            if wake_fd is not None and select.select([wake_fd], [], [], 0.005)[0]:
                try:
                    os.read(wake_fd, 4096)
                except (BlockingIOError, OSError):
                    pass
                return self._collect()
            if wake_fd is None:
                time.sleep(0.005)

    def _collect(self) -> list[tuple[Slot, dict[str, Any]]]:
        ray = self._ray
        out: list[tuple[Slot, dict[str, Any]]] = []
        for slot in self.slots:
            ref = slot.handle.get("ready_ref")
            if ref is not None and ray.wait([ref], timeout=0)[0]:
                slot.handle["ready_ref"] = None
                try:
                    slot.pid = ray.get(ref)
                    out.append((slot, {"kind": "ready", "pid": slot.pid, "t": time.time()}))
                except Exception as exc:
                    out.append((slot, {"kind": "died", "t": time.time(), "exitcode": repr(exc)}))
        # finished runs first, then the queue: every message a run sent was queued before it returned
        finished: list[tuple[Slot, dict[str, Any]]] = []
        for slot in self.slots:
            ref = slot.handle.get("run_ref")
            if ref is not None and ray.wait([ref], timeout=0)[0]:
                slot.handle["run_ref"] = None
                try:
                    finished.append((slot, ray.get(ref)))
                except Exception as exc:  # the actor died (killed, OOM, node lost)
                    finished.append((slot, {"kind": "died", "t": time.time(), "exitcode": repr(exc)}))
        by_job = {s.job["id"]: s for s in self.slots if s.job is not None}
        if self.messages.qsize():
            for msg in self.messages.get_nowait_batch(self.messages.qsize()):
                slot = by_job.get(msg.get("job_id"))
                if slot is not None:
                    out.append((slot, msg))
        return out + finished

    def stop(self) -> None:
        for slot in self.slots:
            try:
                self._ray.kill(slot.handle["actor"], no_restart=True)
            except Exception:
                pass
        try:
            self._ray.kill(self.messages.actor, no_restart=True)
        except Exception:
            pass
        if self._owns_ray:
            self._ray.shutdown()
