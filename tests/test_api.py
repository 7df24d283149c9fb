"""HTTP API against a real job service (worker process, SQLite job table) and the test tasks."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from tests.test_api_support import EXTRA_TASKS, png_bytes, wait_for, wav_bytes  # noqa: E402


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """One running service + API app for the module (a worker start costs seconds)."""
    from studio.api.app import ApiSettings, create_app
    from studio.api.uploads import UploadLimits
    from studio.jobs.plugins import load_extra_tasks
    from studio.jobs.service import JobService

    root = tmp_path_factory.mktemp("api")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STUDIO_EXTRA_TASKS", EXTRA_TASKS)
        mp.setenv("STUDIO_STATE", str(root / "state"))
        mp.setenv("STUDIO_OUTPUTS", str(root / "outputs"))
        mp.setenv("STUDIO_DATASETS", str(root / "datasets"))
        mp.setenv("STUDIO_MODELS", str(root / "models"))
        mp.setenv("STUDIO_ADAPTERS", str(root / "adapters"))
        load_extra_tasks(EXTRA_TASKS)
        service = JobService(root / "state" / "jobs.db", root / "outputs", workers=1).start()
        settings = ApiSettings(upload_limits=UploadLimits(max_bytes=300_000), json_max_bytes=100_000,
                               mount_web=False, poll_s=0.05)
        app = create_app(service, settings=settings)
        with TestClient(app) as client:
            yield {"client": client, "service": service, "root": root, "app": app}
        service.stop()


def _job(client, job_id):
    return client.get(f"/api/jobs/{job_id}").json()


def _wait_status(client, job_id, statuses, timeout=30.0):
    return wait_for(lambda: _job(client, job_id), lambda j: j["status"] in statuses, timeout)


def _sse(client, url, headers=None, max_events=None):
    """(id, type, data) of every event of a stream (until it ends or max_events)."""
    events, current = [], {}
    with client.stream("GET", url, headers=headers or {}) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("id: "):
                current["id"] = int(line[4:])
            elif line.startswith("event: "):
                current["type"] = line[7:]
            elif line.startswith("data: "):
                current["data"] = json.loads(line[6:])
            elif line == "" and "id" in current:
                events.append((current["id"], current["type"], current["data"]))
                current = {}
                if max_events and len(events) >= max_events:
                    break
    return events


# -- discovery -----------------------------------------------------------------------------------


def test_health_and_tasks_publish_schemas(env):
    c = env["client"]
    health = c.get("/api/health").json()
    assert health["status"] == "ok" and "test_gradient" in health["tasks"]
    tasks = {t["name"]: t for t in c.get("/api/tasks").json()}
    schema = tasks["test_gradient"]["input_schema"]
    assert schema["properties"]["steps"]["maximum"] == 1000
    assert tasks["test_media_echo"]["input_schema"]["properties"]["image"]["media"] == "image"
    assert c.get("/api/tasks/test_gradient").json()["output_kinds"] == ["image"]
    assert c.get("/api/tasks/nope").status_code == 404


def test_a_task_registered_later_appears_without_code_changes(env):
    from studio.tasks import registry
    from tests.fixtures_tasks import GradientTask

    class LateTask(GradientTask):
        name = "late_arrival"
        title = "Late arrival"

    registry.register(LateTask())
    try:
        names = [t["name"] for t in env["client"].get("/api/tasks").json()]
        assert "late_arrival" in names
        assert env["client"].get("/api/tasks/late_arrival").json()["title"] == "Late arrival"
    finally:
        registry.unregister("late_arrival")


# -- submit, run, events, download ---------------------------------------------------------------


def test_submit_runs_streams_and_downloads(env):
    c = env["client"]
    r = c.post("/api/jobs", json={"task": "test_gradient", "inputs": {"steps": 3, "seed": 7}})
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["status"] in ("queued", "running") and job["seed"] == 7 and job["spec"]["steps"] == 3
    events = _sse(c, f"/api/jobs/{job['id']}/events")  # ends after the job finishes
    types = [t for _, t, _ in events]
    assert types[0] == "submitted" and types[-1] == "succeeded" and "started" in types
    assert 1 <= types.count("progress") <= 3  # the worker throttles progress events
    progress = [d["data"] for _, t, d in events if t == "progress"]
    assert progress[-1]["progress"] == pytest.approx(1.0)
    assert progress[0]["preview"].startswith("data:image/png;base64,")
    ids = [i for i, _, _ in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)

    done = _job(c, job["id"])
    assert done["status"] == "succeeded"
    rel = done["result"]["files"][0]["path"]
    got = c.get(f"/api/outputs/{rel}")
    assert got.status_code == 200 and got.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert got.content == (env["root"] / "outputs" / rel).read_bytes()


def test_last_event_id_replays_exactly_what_was_missed(env):
    c = env["client"]
    job = c.post("/api/jobs", json={"task": "test_gradient", "inputs": {"steps": 6, "sleep": 0.05}}).json()
    first = _sse(c, f"/api/jobs/{job['id']}/events", max_events=3)  # the client drops after 3 events
    assert len(first) == 3
    rest = _sse(c, f"/api/jobs/{job['id']}/events", headers={"Last-Event-ID": str(first[-1][0])})
    full = _sse(c, f"/api/jobs/{job['id']}/events")
    assert [e[0] for e in first + rest] == [e[0] for e in full]  # nothing lost, nothing repeated
    assert rest[-1][1] == "succeeded"
    # ?after= is the same resume point for clients that cannot set headers
    assert _sse(c, f"/api/jobs/{job['id']}/events?after={first[-1][0]}") == rest
    bad = c.get(f"/api/jobs/{job['id']}/events", headers={"Last-Event-ID": "abc"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"][0] == "header"
    assert c.get("/api/jobs/0123/events").status_code == 404


def test_queue_wide_stream_replays_from_an_id(env):
    c = env["client"]
    job = c.post("/api/jobs", json={"task": "test_gradient", "inputs": {"steps": 1}}).json()
    _wait_status(c, job["id"], ("succeeded",))
    mine = [e[0] for e in _sse(c, f"/api/jobs/{job['id']}/events")]
    events = _sse(c, f"/api/events?after={mine[0] - 1}", max_events=2)  # endless stream: stop after two
    assert [e[0] for e in events] == sorted(e[0] for e in events) and events[0][0] == mine[0]


def test_batch_submit_and_list_filters(env):
    c = env["client"]
    c.post("/api/queue/pause")
    try:
        items = [{"task": "test_gradient", "inputs": {"steps": 1, "seed": s}} for s in (1, 2, 3)]
        r = c.post("/api/jobs", json=items)
        assert r.status_code == 201 and [j["seed"] for j in r.json()] == [1, 2, 3]
        queued = c.get("/api/jobs", params={"status": "queued", "task": "test_gradient"}).json()
        assert [j["queue_position"] for j in queued] == list(range(len(queued)))
        ids = [j["id"] for j in r.json()]
        moved = c.post(f"/api/jobs/{ids[2]}/move", json={"to": "front"}).json()
        assert moved["queue_position"] == 0
        assert c.post(f"/api/jobs/{ids[0]}/move", json={"to": 1}).json()["queue_position"] == 1
        assert c.post(f"/api/jobs/{ids[0]}/move", json={"to": "sideways"}).status_code == 422
        assert c.get("/api/jobs", params={"status": "bogus"}).status_code == 422
        assert c.get("/api/queue").json()["paused"] is True
    finally:
        c.post("/api/queue/resume")
    for jid in ids:
        _wait_status(c, jid, ("succeeded",))
    assert c.post(f"/api/jobs/{ids[0]}/move", json={"to": "front"}).status_code == 409


# -- validation: 422 naming the field --------------------------------------------------------------


@pytest.mark.parametrize("body, loc", [
    ({"task": "test_gradient", "inputs": {"steps": 0}}, ["body", "inputs", "steps"]),
    ({"task": "test_gradient", "inputs": {"colour": "purple"}}, ["body", "inputs", "colour"]),
    ({"task": "test_gradient", "inputs": {"bogus": 1}}, ["body", "inputs", "bogus"]),
    ({"task": "test_gradient", "inputs": {"steps": 2, "fail_at": 5}}, ["body", "inputs", "fail_at"]),
    ({"task": "no_such_task", "inputs": {}}, ["body", "task"]),
    ({"task": "test_gradient", "inputs": {}, "priority": 10**6}, ["body", "priority"]),
    ([{"task": "test_gradient", "inputs": {}}, {"task": "test_gradient", "inputs": {"width": 4}}],
     ["body", 1, "inputs", "width"]),
    ({"task": "test_media_echo", "inputs": {"image": "/etc/passwd"}}, ["body", "inputs", "image"]),
])
def test_bad_input_is_422_naming_the_field(env, body, loc):
    before = env["client"].get("/api/queue").json()["counts"]
    r = env["client"].post("/api/jobs", json=body)
    assert r.status_code == 422, r.text
    assert any(d["loc"][: len(loc)] == loc or d["loc"] == loc for d in r.json()["detail"]), r.json()
    assert env["client"].get("/api/queue").json()["counts"] == before  # nothing was stored


def test_malformed_bodies_are_4xx(env):
    c = env["client"]
    assert c.post("/api/jobs", content=b"{not json", headers={"content-type": "application/json"}).status_code == 422
    assert c.post("/api/jobs", json=[]).status_code == 422
    huge = {"task": "test_gradient", "inputs": {"x": "a" * 200_000}}
    r = c.post("/api/jobs", json=huge)
    assert r.status_code == 413 and "larger than" in r.json()["detail"][0]["msg"]


# -- cancel / retry / delete -------------------------------------------------------------------------


def test_cancel_queued_and_running_then_retry(env):
    c = env["client"]
    long = c.post("/api/jobs", json={"task": "test_gradient", "inputs": {"steps": 200, "sleep": 0.05}}).json()
    waiting = c.post("/api/jobs", json={"task": "test_gradient", "inputs": {"steps": 1}}).json()
    _wait_status(c, long["id"], ("running",))
    assert c.post(f"/api/jobs/{waiting['id']}/cancel").json()["status"] == "canceled"  # queued: at once
    r = c.post(f"/api/jobs/{long['id']}/cancel")
    assert r.status_code == 200 and r.json()["cancel_requested"] is True
    ended = _wait_status(c, long["id"], ("canceled", "failed", "succeeded"), timeout=20)
    assert ended["status"] == "canceled" and ended["progress"] < 1.0
    assert not list((env["root"] / "outputs").glob(f"*/{long['id']}"))  # nothing half-written kept
    assert c.post(f"/api/jobs/{long['id']}/cancel").status_code == 409  # finished: conflict
    retried = c.post(f"/api/jobs/{waiting['id']}/retry").json()
    assert retried["status"] in ("queued", "running") and retried["attempt"] == 2 and retried["seed"] == waiting["seed"]
    _wait_status(c, waiting["id"], ("succeeded",))
    assert c.post(f"/api/jobs/{waiting['id']}/retry").status_code == 409
    assert c.delete(f"/api/jobs/{waiting['id']}").status_code == 204
    assert c.get(f"/api/jobs/{waiting['id']}").status_code == 404
    assert c.post("/api/jobs/ffff/cancel").status_code == 404


def test_prune_and_queue_endpoints(env):
    c = env["client"]
    assert c.post("/api/queue/prune", json={}).status_code == 422
    r = c.post("/api/queue/prune", json={"older_than": 10**9})
    assert r.status_code == 200 and r.json()["deleted"] == 0


# -- outputs: no path traversal ---------------------------------------------------------------------


def test_outputs_refuse_traversal_absolute_hidden_and_symlinks(env, tmp_path):
    c = env["client"]
    outputs = env["root"] / "outputs"
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    (outputs / "links").mkdir(exist_ok=True)
    (outputs / "links" / "out.txt").symlink_to(secret)
    (outputs / "links" / "dir").symlink_to(tmp_path, target_is_directory=True)
    (outputs / ".staging" / "x").mkdir(parents=True, exist_ok=True)
    (outputs / ".staging" / "x" / "half.png").write_bytes(b"partial")
    for url in ["/api/outputs/..%2Fstate%2Fjobs.db", "/api/outputs/links/..%2F..%2Fstate%2Fjobs.db",
                "/api/outputs/%2Fetc%2Fpasswd", "/api/outputs//etc/passwd", "/api/outputs/.staging/x/half.png",
                "/api/outputs/links/out.txt", "/api/outputs/links/dir/secret.txt", "/api/outputs/nope.png",
                "/api/outputs/C:%5Cwindows"]:
        r = c.get(url)
        assert r.status_code in (400, 404), (url, r.status_code)
        assert b"top secret" not in r.content and b"SQLite" not in r.content


# -- uploads -----------------------------------------------------------------------------------------


def test_upload_then_use_as_media_input(env):
    c = env["client"]
    r = c.post("/api/uploads", files={"file": ("../../evil name.png", png_bytes(), "image/png")}, data={"media": "image"})
    assert r.status_code == 201, r.text
    up = r.json()
    path = Path(up["path"])
    assert path.is_file() and path.name == "evil_name.png" and up["media"] == "image"
    assert path.is_relative_to(env["root"] / "state" / "uploads")
    mask = c.post("/api/uploads", files={"file": ("m.png", png_bytes(seed=1), "image/png")}, data={"media": "mask"}).json()
    job = c.post("/api/jobs", json={"task": "test_media_echo",
                                    "inputs": {"image": up["path"], "mask": mask["path"], "strength": 0.5}})
    assert job.status_code == 201, job.text
    done = _wait_status(c, job.json()["id"], ("succeeded", "failed"))
    assert done["status"] == "succeeded", done["error"]
    assert c.get(f"/api/outputs/{done['result']['files'][0]['path']}").status_code == 200


@pytest.mark.parametrize("name, content, media, status", [
    ("notes.txt", b"hello, just text", None, 415),
    ("fake.png", b"hello, just text", "image", 415),
    ("sound.wav", wav_bytes(), "image", 415),
    ("broken.png", png_bytes()[:40], "image", 422),
    ("empty.png", b"", "image", 422),
    ("big.png", b"\x89PNG\r\n\x1a\n" + b"0" * 400_000, "image", 413),
    ("x.png", png_bytes(), "hologram", 422),
])
def test_upload_rejections_are_clear_4xx(env, name, content, media, status):
    data = {"media": media} if media else {}
    before = set((env["root"] / "state" / "uploads").rglob("*"))
    r = env["client"].post("/api/uploads", files={"file": (name, content, "application/octet-stream")}, data=data)
    assert r.status_code == status, r.text
    detail = r.json()["detail"]
    assert isinstance(detail, list) and detail[0]["loc"][-1] in ("file", "media", "body")
    after = {p for p in (env["root"] / "state" / "uploads").rglob("*") if p.is_file()}
    assert after <= before  # nothing half-written left behind


def test_upload_accepts_audio_without_declared_kind(env):
    r = env["client"].post("/api/uploads", files={"file": ("voice.wav", wav_bytes(), "audio/wav")})
    assert r.status_code == 201 and r.json()["media"] == "audio" and r.json()["filename"] == "voice.wav"


# -- auth --------------------------------------------------------------------------------------------


def test_token_is_required_on_every_route_when_set(env):
    from studio.api.app import ApiSettings, create_app

    app = create_app(env["service"], token="s3cret", settings=ApiSettings(mount_web=False))
    c = TestClient(app)
    for method, url in [("GET", "/api/health"), ("GET", "/api/tasks"), ("GET", "/api/jobs"), ("POST", "/api/jobs"),
                        ("GET", "/api/outputs/x.png"), ("POST", "/api/uploads"), ("GET", "/openapi.json"),
                        ("GET", "/api/events")]:
        r = c.request(method, url)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer", (method, url)
    assert c.get("/api/health", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert c.get("/api/health", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    login = c.get("/api/health?token=s3cret")  # a browser's first visit sets the cookie
    assert login.status_code == 200 and "studio_token=s3cret" in login.headers["set-cookie"]
    assert c.get("/api/tasks").status_code == 200  # the client now carries the cookie


def test_non_loopback_bind_refuses_without_token():
    from studio.api.auth import TokenRequired, check_bind, is_loopback
    from studio.api.server import serve

    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5") and not is_loopback("example.org")
    check_bind("127.0.0.1", None)
    check_bind("0.0.0.0", "tok")
    env = os.environ.pop("STUDIO_API_TOKEN", None)
    try:
        with pytest.raises(TokenRequired, match="token"):
            serve(host="0.0.0.0", port=1)  # refuses before starting a service or a socket
    finally:
        if env is not None:
            os.environ["STUDIO_API_TOKEN"] = env


def test_library_lists_models_and_adapters_with_cards(env):
    import torch

    from studio.lora.files import write_adapter_dir

    model = env["root"] / "models" / "tiny-dit"
    model.mkdir(parents=True)
    (model / "config.json").write_text(json.dumps({"_class_name": "DiT", "depth": 2}))
    (model / "MODEL_CARD.md").write_text("# tiny-dit\ntrained 10 steps")
    write_adapter_dir(env["root"] / "adapters" / "style", {"w": torch.zeros(2, 2)}, {"r": 4},
                      {"base_model_id": "tiny-dit", "rank": 4, "dataset": "shapes", "steps": 50}, "# style card")
    models = env["client"].get("/api/models").json()
    assert [(m["name"], m["class"]) for m in models] == [("tiny-dit", "DiT")] and "10 steps" in models[0]["card"]
    adapters = env["client"].get("/api/adapters").json()
    assert adapters[0]["name"] == "style" and adapters[0]["base"] == "tiny-dit" and adapters[0]["rank"] == 4
    assert adapters[0]["metadata"]["dataset"] == "shapes" and adapters[0]["card"] == "# style card"


def test_openapi_lists_the_contract(env):
    spec = env["client"].get("/openapi.json").json()
    for path in ("/api/health", "/api/tasks", "/api/jobs", "/api/jobs/{job_id}", "/api/jobs/{job_id}/cancel",
                 "/api/jobs/{job_id}/retry", "/api/jobs/{job_id}/move", "/api/jobs/{job_id}/events",
                 "/api/outputs/{path}", "/api/uploads"):
        assert path in spec["paths"], path
