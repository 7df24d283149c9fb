"""kill -9 of the coordinator (`studio worker`) loses no submitted job; a new coordinator finishes
them with the same seeds and outputs identical to uninterrupted runs. Its orphaned worker exits."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from studio.jobs.queue import JobQueue
from studio.jobs.runner import run_job
from studio.jobs.service import JobService
from tests.waiting import wait_until  # noqa: E402

pytestmark = pytest.mark.timeout(400)




def test_kill9_coordinator_loses_no_job(tmp_path, gradient_task):
    db, outputs = tmp_path / "jobs.db", tmp_path / "outputs"
    coordinator = subprocess.Popen(
        [str(Path(sys.executable).parent / "studio"), "worker", "--db", str(db), "--outputs", str(outputs),
         "--heartbeat-timeout", "30", "--no-preload"],
        stdout=subprocess.DEVNULL, stderr=open(tmp_path / "coordinator.log", "w"), env=os.environ.copy(),
    )
    try:
        queue = JobQueue(db)  # this test process is a front-end: it only writes submits
        inputs = [{"steps": 10, "sleep": 0.2, "colour": c} for c in ("red", "green", "blue")]
        jobs = queue.submit_many([{"task": "test_gradient", "inputs": i} for i in inputs])
        running = wait_until(lambda: [j for j in queue.list(status="running") if j["progress"] > 0.2], 180,
                        "a job in progress")[0]
        workers = psutil.Process(coordinator.pid).children(recursive=True)
        assert workers
        os.kill(coordinator.pid, signal.SIGKILL)
        coordinator.wait(10)
    finally:
        if coordinator.poll() is None:
            coordinator.kill()
    # every submitted job is still there, with its seed
    assert {j["id"]: j["seed"] for j in queue.list(limit=10)} == {j["id"]: j["seed"] for j in jobs}
    assert queue.get(running["id"])["status"] == "running"  # as the dead coordinator left it
    staged = list((outputs / ".staging").glob(f"{running['id']}-*"))
    # the orphaned worker notices its parent is gone and exits instead of finishing the job
    wait_until(lambda: not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers), 30, "orphan exit")

    assert staged  # the killed run had a half-written staging folder…
    with JobService(db, outputs, workers=1, preload_plugins=False) as service:
        done = {j["id"]: wait_until(lambda j=j: (x := service.queue.get(j["id"]))["status"] in ("succeeded", "failed") and x,
                               240, "jobs to finish") for j in jobs}
    assert all(d["status"] == "succeeded" for d in done.values()), [d["error"] for d in done.values()]
    assert done[running["id"]]["attempt"] == 2
    assert "requeued" in [e["type"] for e in queue.events(job_id=running["id"])]
    for job, spec in zip(jobs, inputs):
        reference = run_job("test_gradient", spec, job["seed"], tmp_path / "ref" / job["id"])
        produced = outputs / done[job["id"]]["result"]["files"][0]["path"]
        assert produced.read_bytes() == reference.files[0].path.read_bytes()
    assert list((outputs / ".staging").glob("*")) == []  # the orphan's half-written folder was swept
