"""What a worker does with one job handed to it by the coordinator, whatever carries the messages.

``JobWorker.execute(job, send, is_canceled)`` runs ``run_job`` and reports through ``send(msg)``:
``started``, throttled ``progress`` (with a PNG preview at most ~4 per second), ``heartbeat`` (a
thread, every ``heartbeat_s``), and one of ``succeeded`` / ``failed`` / ``canceled``. A message is a
dict with ``kind``, ``job_id`` and ``t`` (the worker's clock) plus its payload.
"""

from __future__ import annotations

import os
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Callable

from studio.jobs.cache import ModelCache
from studio.store.outputs import OutputStore

Send = Callable[[dict[str, Any]], None]

PROGRESS_INTERVAL_S = 0.05
PREVIEW_INTERVAL_S = 0.25


class JobWorker:
    def __init__(self, outputs_dir: str | os.PathLike, device: str = "cpu", dtype: str = "float32",
                 cache_budget_bytes: int = 4 << 30, heartbeat_s: float = 1.0):
        self.store = OutputStore(Path(outputs_dir))
        self.device = device
        self.dtype = dtype
        self.cache = ModelCache(cache_budget_bytes)
        self.heartbeat_s = heartbeat_s

    def execute(self, job: dict[str, Any], send: Send, is_canceled: Callable[[], bool]) -> dict[str, Any]:
        from studio.jobs.runner import result_to_json, run_job
        from studio.tasks.base import Canceled, CancelToken

        job_id = job["id"]
        send({"kind": "started", "job_id": job_id, "t": time.time(), "pid": os.getpid()})
        stop_beat = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(job_id, send, stop_beat), daemon=True)
        beat.start()
        final = self.store.final_dir(job_id, job.get("created_at"))
        try:
            result = run_job(
                job["task"], job["spec"], job["seed"], final, _Progress(job_id, send),
                CancelToken(poll=is_canceled), cache=self.cache, device=self.device, dtype=self.dtype,
                job_id=job_id, store=self.store,
            )
            msg = {"kind": "succeeded", "result": result_to_json(result, final, self.store.root)}
        except Canceled:
            msg = {"kind": "canceled"}
        except BaseException as exc:  # a job's error is data for the job table, never the worker's death
            msg = {"kind": "failed", "error": {"type": type(exc).__name__, "message": str(exc),
                                              "traceback": traceback.format_exc()}}
        finally:
            stop_beat.set()
        msg.update(job_id=job_id, t=time.time())
        send(msg)
        return msg

    def _heartbeat(self, job_id: str, send: Send, stop: threading.Event) -> None:
        while not stop.wait(self.heartbeat_s):
            send({"kind": "heartbeat", "job_id": job_id, "t": time.time()})


class _Progress:
    """The job's progress callback: throttled messages, previews encoded in the worker."""

    def __init__(self, job_id: str, send: Send):
        self.job_id = job_id
        self.send = send
        self.last = 0.0
        self.last_preview = 0.0

    def __call__(self, fraction: float, message: str, preview: Any) -> None:
        from studio.jobs.preview import encode_preview

        now = time.monotonic()
        if fraction < 1.0 and now - self.last < PROGRESS_INTERVAL_S:
            return
        self.last = now
        msg = {"kind": "progress", "job_id": self.job_id, "t": time.time(), "progress": fraction, "message": message}
        if preview is not None and now - self.last_preview >= PREVIEW_INTERVAL_S:
            try:
                encoded = encode_preview(preview)
            except Exception:  # a preview is a nicety; never fail a job over it
                encoded = None
            if encoded:
                msg["preview"] = encoded
                self.last_preview = now
        self.send(msg)
