"""Queue operations on the SQLite job table (no workers): validation, order, cancel, retry, prune."""

import sqlite3

import pydantic
import pytest

from studio.jobs.errors import BatchItemError, JobNotFound, JobStateError
from studio.jobs.queue import JobQueue
from studio.tasks.base import InputError


@pytest.fixture
def queue(tmp_path, gradient_task):
    return JobQueue(tmp_path / "jobs.db")


def _count(queue):
    return sqlite3.connect(queue.db.path).execute("SELECT COUNT(*) FROM jobs").fetchone()[0]


def test_submit_validates_and_assigns_a_seed(queue):
    job = queue.submit("test_gradient", {"steps": 3})
    assert job["status"] == "queued" and job["attempt"] == 1
    assert 0 <= job["seed"] < 2**31 and job["spec"]["seed"] == job["seed"]
    assert job["spec"]["steps"] == 3 and job["spec"]["width"] == 32  # defaults filled in
    assert queue.submit("test_gradient", {"seed": 11})["seed"] == 11
    assert [e["type"] for e in queue.events(job_id=job["id"])] == ["submitted"]


def test_bad_input_is_rejected_before_anything_is_stored(queue):
    with pytest.raises(pydantic.ValidationError, match="steps"):
        queue.submit("test_gradient", {"steps": 0})
    with pytest.raises(pydantic.ValidationError, match="bogus"):
        queue.submit("test_gradient", {"bogus": 1})
    with pytest.raises(InputError) as err:
        queue.submit("test_gradient", {"steps": 2, "fail_at": 5})
    assert err.value.field == "fail_at"
    with pytest.raises(KeyError, match="no_such_task"):
        queue.submit("no_such_task", {})
    with pytest.raises(BatchItemError) as batch:
        queue.submit_many([{"task": "test_gradient", "inputs": {}}, {"task": "test_gradient", "inputs": {"width": 1}}])
    assert batch.value.index == 1
    assert _count(queue) == 0  # the valid first item of the failed batch was not stored either


def test_run_order_priority_and_moves(queue):
    a, b, c = (queue.submit("test_gradient", {"seed": i})["id"] for i in range(3))
    urgent = queue.submit("test_gradient", {}, priority=5)["id"]
    order = lambda: [j["id"] for j in queue.list(status="queued")]  # noqa: E731
    assert order() == [urgent, a, b, c]
    assert queue.position(c) == 3
    queue.move(c, "front")
    assert order() == [c, urgent, a, b]
    queue.move(c, "back")
    assert order()[-1] == c
    queue.move(b, 1)
    assert order().index(b) == 1
    with pytest.raises(ValueError, match="to"):
        queue.move(a, "sideways")


def test_cancel_retry_delete_and_state_errors(queue):
    job = queue.submit("test_gradient", {})["id"]
    assert queue.cancel(job)["status"] == "canceled"  # queued: removed from the queue at once
    assert queue.list(status="queued") == []
    with pytest.raises(JobStateError):
        queue.cancel(job)
    retried = queue.retry(job)
    assert retried["status"] == "queued" and retried["attempt"] == 2
    with pytest.raises(JobStateError):
        queue.delete(job)  # not finished
    queue.cancel(job)
    queue.delete(job)
    with pytest.raises(JobNotFound):
        queue.get(job)
    with pytest.raises(JobNotFound):
        queue.retry("0" * 32)


def test_pause_resume_prune_and_event_replay(queue):
    queue.pause()
    assert queue.is_paused()
    queue.resume()
    assert not queue.is_paused()
    ids = [queue.submit("test_gradient", {})["id"] for _ in range(4)]
    for i in ids:
        queue.cancel(i)
    assert queue.prune(keep_last=1) == 3
    assert queue.counts()["canceled"] == 1
    with pytest.raises(ValueError):
        queue.prune()
    events = queue.events()
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)
    tail = queue.events(after_id=events[-3]["id"])
    assert tail == events[-2:]  # replay from a Last-Event-ID gives exactly what came after
    assert {"paused", "resumed"} <= {e["type"] for e in events if e["job_id"] is None}


def test_a_second_process_sees_the_same_table(tmp_path, gradient_task):
    first = JobQueue(tmp_path / "jobs.db")
    job = first.submit("test_gradient", {"seed": 3})
    second = JobQueue(tmp_path / "jobs.db")
    assert second.get(job["id"])["seed"] == 3
    assert second.db.conn().execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_one_coordinator_per_database(tmp_path, gradient_task):
    from studio.jobs.errors import CoordinatorLocked
    from studio.jobs.service import JobService

    first = JobService(tmp_path / "jobs.db", tmp_path / "out")
    first._take_lock()
    try:
        with pytest.raises(CoordinatorLocked, match="another coordinator"):
            JobService(tmp_path / "jobs.db", tmp_path / "out").start()
    finally:
        first._lock_file.close()
