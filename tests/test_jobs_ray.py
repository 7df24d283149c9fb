"""The Ray executor against a real local Ray instance: same job code, same bytes, cancel, actor kill."""

from __future__ import annotations

import os

import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install -e '.[distributed]')")

from studio.jobs.runner import run_job  # noqa: E402
from studio.jobs.service import JobService  # noqa: E402
from tests.waiting import wait_until  # noqa: E402

pytestmark = pytest.mark.timeout(400)




def test_ray_executor_runs_cancels_and_replaces_stuck_actors(tmp_path, gradient_task):
    inputs = {"steps": 3, "colour": "red"}
    with JobService(tmp_path / "jobs.db", tmp_path / "outputs", executor="ray", workers=1,
                    cancel_grace_s=1.0, preload_plugins=False) as service:
        q = service.queue
        done_of = lambda jid: (j := q.get(jid))["status"] in ("succeeded", "failed", "canceled") and j  # noqa: E731
        first = q.submit("test_gradient", inputs)
        second = q.submit("test_gradient", {**inputs, "model": first["spec"]["model"]})
        a, b = wait_until(lambda: done_of(first["id"]), 240, "first"), wait_until(lambda: done_of(second["id"]), 60, "second")
        assert a["status"] == b["status"] == "succeeded", (a["error"], b["error"])
        assert a["result"]["data"]["pid"] != os.getpid()  # ran in the actor's process
        assert b["result"]["data"]["load_number"] == 1  # the actor's model cache kept the pipeline
        reference = run_job("test_gradient", inputs, first["seed"], tmp_path / "ref")
        produced = service.outputs_dir / a["result"]["files"][0]["path"]
        assert produced.read_bytes() == reference.files[0].path.read_bytes()
        kinds = [e["type"] for e in q.events(job_id=first["id"])]
        assert "started" in kinds and "progress" in kinds

        slow = q.submit("test_gradient", {"steps": 100, "sleep": 0.1})
        wait_until(lambda: q.get(slow["id"])["progress"] > 0, 60, "progress")
        q.cancel(slow["id"])
        assert wait_until(lambda: done_of(slow["id"]), 30, "cancel")["status"] == "canceled"

        pid = service.workers_info()[0]["pid"]
        stuck = q.submit("test_gradient", {"steps": 2, "stall_s": 60})
        wait_until(lambda: q.get(stuck["id"])["started_at"], 60, "stuck start")
        q.cancel(stuck["id"])
        assert wait_until(lambda: done_of(stuck["id"]), 30, "kill")["status"] == "canceled"
        wait_until(lambda: service.workers_info()[0]["ready"], 120, "fresh actor")
        assert service.workers_info()[0]["pid"] != pid
        after = q.submit("test_gradient", {"steps": 1})
        assert wait_until(lambda: done_of(after["id"]), 120, "after")["status"] == "succeeded"
        assert not list(service.outputs_dir.glob(f"*/{slow['id']}")) and not list(service.outputs_dir.glob(f"*/{stuck['id']}"))
