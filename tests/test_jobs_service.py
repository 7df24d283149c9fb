"""The coordinator with real worker processes: progress, cache, cancel, kill -9, heartbeat expiry.

One service (one spawned worker) serves the whole module: starting a worker imports every plugin,
which takes seconds on a shared machine.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from studio.jobs.runner import run_job
from studio.jobs.service import JobService
from tests.waiting import wait_until  # noqa: E402

pytestmark = pytest.mark.timeout(300)
EXTRA = "tests.fixtures_tasks:GradientTask"


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    from studio.jobs.plugins import load_extra_tasks

    os.environ["STUDIO_EXTRA_TASKS"] = EXTRA
    load_extra_tasks(EXTRA)
    root = tmp_path_factory.mktemp("svc")
    svc = JobService(root / "jobs.db", root / "outputs", workers=1, cancel_grace_s=1.0,
                     heartbeat_timeout_s=3.0, heartbeat_s=0.2, preload_plugins=False).start()
    wait_until(lambda: all(w["ready"] for w in svc.workers_info()), 120, "worker ready")
    yield svc
    svc.stop()




def _finished(svc, job_id, timeout=60):
    return wait_until(lambda: (j := svc.queue.get(job_id))["status"] in ("succeeded", "failed", "canceled") and j,
                 timeout, f"job {job_id} to finish")


def _worker_pid(svc):
    return svc.workers_info()[0]["pid"]


def _files(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and ".staging" not in p.parts)


def test_job_runs_with_progress_previews_and_outputs(service):
    job = service.queue.submit("test_gradient", {"steps": 4, "sleep": 0.3})
    done = _finished(service, job["id"])
    assert done["status"] == "succeeded", done["error"]
    assert done["progress"] == 1.0 and done["started_at"] >= done["created_at"]
    files = done["result"]["files"]
    assert files[0]["path"].endswith(f"{job['id']}/gradient.png")
    assert (service.outputs_dir / files[0]["path"]).exists()
    assert (service.outputs_dir / (files[0]["path"] + ".json")).exists()
    events = service.queue.events(job_id=job["id"])
    kinds = [e["type"] for e in events]
    assert kinds[:2] == ["submitted", "started"] and kinds[-1] == "succeeded" and "progress" in kinds
    previews = [e["data"]["preview"] for e in events if e["type"] == "progress" and "preview" in e["data"]]
    assert previews and previews[0].startswith("data:image/png;base64,")


def test_second_job_on_a_model_does_not_reload(service):
    a = service.queue.submit("test_gradient", {"model": "cache-probe", "steps": 1})
    b = service.queue.submit("test_gradient", {"model": "cache-probe", "steps": 1})
    ra, rb = _finished(service, a["id"])["result"]["data"], _finished(service, b["id"])["result"]["data"]
    assert ra["pid"] == rb["pid"]  # same worker process
    assert ra["load_number"] == rb["load_number"] == 1


def test_failed_job_records_the_error_and_the_queue_keeps_serving(service):
    bad = service.queue.submit("test_gradient", {"steps": 3, "fail_at": 1})
    good = service.queue.submit("test_gradient", {"steps": 1})
    failed = _finished(service, bad["id"])
    assert failed["status"] == "failed"
    assert failed["error"]["type"] == "RuntimeError" and "step 1" in failed["error"]["message"]
    assert "Traceback" in failed["error"]["traceback"]
    assert _finished(service, good["id"])["status"] == "succeeded"
    assert not list(service.outputs_dir.glob(f"*/{bad['id']}"))


def test_cancel_running_job_stops_at_next_step(service):
    pid = _worker_pid(service)
    job = service.queue.submit("test_gradient", {"steps": 200, "sleep": 0.1})
    wait_until(lambda: service.queue.get(job["id"])["progress"] > 0, 60, "progress")
    t0 = time.time()
    service.queue.cancel(job["id"])
    done = _finished(service, job["id"])
    assert done["status"] == "canceled" and time.time() - t0 < 5
    assert _worker_pid(service) == pid  # cooperative: no kill needed
    assert not list(service.outputs_dir.glob(f"*/{job['id']}"))
    assert not list((service.outputs_dir / ".staging").glob(f"{job['id']}*"))


def test_stuck_job_is_killed_after_grace_and_worker_replaced(service):
    pid = _worker_pid(service)
    job = service.queue.submit("test_gradient", {"steps": 2, "stall_s": 60})
    wait_until(lambda: service.queue.get(job["id"])["started_at"], 60, "start")
    service.queue.cancel(job["id"])
    done = _finished(service, job["id"], timeout=30)
    assert done["status"] == "canceled" and "killed" in done["message"]
    wait_until(lambda: service.workers_info()[0]["ready"], 120, "fresh worker")
    assert _worker_pid(service) != pid
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not list(service.outputs_dir.glob(f"*/{job['id']}"))
    after = service.queue.submit("test_gradient", {"steps": 1})
    assert _finished(service, after["id"])["status"] == "succeeded"


def test_kill9_worker_mid_job_requeues_with_same_seed_and_identical_output(service, tmp_path):
    inputs = {"steps": 8, "sleep": 0.25, "colour": "green"}
    job = service.queue.submit("test_gradient", inputs)
    wait_until(lambda: service.queue.get(job["id"])["progress"] >= 0.25, 60, "progress")
    os.kill(_worker_pid(service), signal.SIGKILL)
    done = _finished(service, job["id"], timeout=180)
    assert done["status"] == "succeeded" and done["attempt"] == 2 and done["seed"] == job["seed"]
    assert "requeued" in [e["type"] for e in service.queue.events(job_id=job["id"])]
    reference = run_job("test_gradient", inputs, job["seed"], tmp_path / "ref")
    produced = service.outputs_dir / done["result"]["files"][0]["path"]
    assert produced.read_bytes() == reference.files[0].path.read_bytes()
    assert not list((service.outputs_dir / ".staging").glob(f"{job['id']}*"))


def test_frozen_worker_heartbeat_expires_and_job_is_requeued(service):
    job = service.queue.submit("test_gradient", {"steps": 6, "sleep": 0.2})
    wait_until(lambda: service.queue.get(job["id"])["progress"] > 0, 60, "progress")
    pid = _worker_pid(service)
    os.kill(pid, signal.SIGSTOP)  # alive but silent: only the heartbeat can tell
    try:
        wait_until(lambda: _worker_pid(service) != pid, 30, "heartbeat expiry")
    finally:
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
    done = _finished(service, job["id"], timeout=180)
    assert done["status"] == "succeeded" and done["attempt"] == 2
    reasons = [e["data"].get("reason", "") for e in service.queue.events(job_id=job["id"]) if e["type"] == "requeued"]
    assert any("heartbeat" in r for r in reasons)


def test_pause_holds_the_queue_and_reorder_runs_next(service):
    service.queue.pause()
    try:
        first = service.queue.submit("test_gradient", {"steps": 1})
        urgent = service.queue.submit("test_gradient", {"steps": 1})
        service.queue.move(urgent["id"], "front")
        time.sleep(0.5)
        assert service.queue.get(first["id"])["status"] == "queued"
    finally:
        service.queue.resume()
    a, b = _finished(service, first["id"]), _finished(service, urgent["id"])
    assert b["started_at"] < a["started_at"]
