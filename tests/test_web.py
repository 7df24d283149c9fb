"""The web app without a browser: schema → widgets, form submit through the queue, queue panel,
gallery and "use these settings again", and the app mounted beside the API."""

from __future__ import annotations

import numpy as np
import pytest

gr = pytest.importorskip("gradio")
from fastapi.testclient import TestClient  # noqa: E402

from tests.test_api_support import EXTRA_TASKS, png_bytes, wait_for  # noqa: E402


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    from studio.api.app import ApiSettings, build_context, create_app
    from studio.jobs.plugins import load_extra_tasks
    from studio.jobs.service import JobService
    from studio.web.app import create_blocks

    root = tmp_path_factory.mktemp("web")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STUDIO_EXTRA_TASKS", EXTRA_TASKS)
        mp.setenv("STUDIO_STATE", str(root / "state"))
        mp.setenv("STUDIO_OUTPUTS", str(root / "outputs"))
        load_extra_tasks(EXTRA_TASKS)
        service = JobService(root / "state" / "jobs.db", root / "outputs", workers=1).start()
        settings = ApiSettings(mount_web=False)
        ctx = build_context(service, settings)
        demo = create_blocks(ctx)
        yield {"service": service, "ctx": ctx, "demo": demo, "root": root, "create_app": create_app}
        service.stop()


def by_id(demo, elem_id):
    found = [b for b in demo.blocks.values() if getattr(b, "elem_id", None) == elem_id]
    assert found, f"no component #{elem_id}"
    return found[0]


def test_field_specs_follow_the_schema():
    from studio.api.fields import field_specs
    from tests.fixtures_tasks import GradientInputs
    from tests.test_api_support import MediaEchoInputs

    g = {s.name: s for s in field_specs(GradientInputs.model_json_schema())}
    assert (g["steps"].type, g["steps"].minimum, g["steps"].maximum) == ("integer", 1, 1000)
    assert g["colour"].choices == ("red", "green", "blue") and g["colour"].default == "blue"
    assert g["fail_at"].nullable and g["seed"].nullable and not g["steps"].nullable
    m = {s.name: s for s in field_specs(MediaEchoInputs.model_json_schema())}
    assert m["image"].media == "image" and m["image"].required
    assert m["mask"].media == "mask" and m["mask"].nullable
    assert m["tags"].type == "array" and m["tags"].item_type == "string"


def test_each_task_gets_a_tab_with_the_right_widgets(web):
    demo = web["demo"]
    for tab in ("tab-test_gradient", "tab-test_media_echo", "tab-gallery", "tab-library"):
        by_id(demo, tab)
    expected = {
        "task-test_gradient-steps": gr.Slider, "task-test_gradient-sleep": gr.Slider,
        "task-test_gradient-colour": gr.Dropdown, "task-test_gradient-fail_at": gr.Textbox,
        "task-test_gradient-seed": gr.Textbox, "task-test_gradient-model": gr.Textbox,
        "task-test_media_echo-image": gr.Image, "task-test_media_echo-mask": gr.ImageEditor,
        "task-test_media_echo-tags": gr.Dropdown, "task-test_media_echo-mode": gr.Dropdown,
        "queue-table": gr.Dataframe, "queue-cancel": gr.Button, "queue-retry": gr.Button,
        "queue-run-next": gr.Button, "job-preview": gr.Image, "gallery": gr.Gallery, "gallery-reuse": gr.Button,
    }
    for elem_id, cls in expected.items():
        assert isinstance(by_id(demo, elem_id), cls), elem_id
    steps = by_id(demo, "task-test_gradient-steps")
    assert (steps.minimum, steps.maximum, steps.step, steps.value) == (1, 1000, 1, 4)
    assert by_id(demo, "task-test_media_echo-tags").multiselect
    assert by_id(demo, "task-test_gradient-seed").value == ""  # empty = a seed is picked and recorded


def test_media_kinds_map_to_upload_widgets():
    from studio.api.fields import FieldSpec
    from studio.web.widgets import make_widget

    kinds = {"image": gr.Image, "mask": gr.ImageEditor, "video": gr.Video, "audio": gr.Audio,
             "mesh": gr.Model3D, "midi": gr.File}
    with gr.Blocks():
        for kind, cls in kinds.items():
            w = make_widget(FieldSpec(name=kind, type="string", title=kind, media=kind), f"w-{kind}")
            assert isinstance(w, cls), kind
        audio = make_widget(FieldSpec(name="a", type="string", title="a", media="audio"), "w-a2")
        assert "microphone" in audio.sources


def test_a_task_registered_later_gets_its_tab(web):
    from studio.tasks import registry
    from studio.web.app import create_blocks
    from tests.fixtures_tasks import GradientTask

    class LateTask(GradientTask):
        name = "late_arrival"
        title = "Late arrival"

    registry.register(LateTask())
    try:
        demo = create_blocks(web["ctx"])
        assert isinstance(by_id(demo, "task-late_arrival-steps"), gr.Slider)
        by_id(demo, "tab-late_arrival")
    finally:
        registry.unregister("late_arrival")


def _form(web, task):
    from studio.api.fields import field_specs
    from studio.tasks.registry import get_task
    from studio.web.task_form import TaskForm

    specs = field_specs(get_task(task).json_schema())
    return TaskForm(task, specs, [None] * len(specs))


def _values(form, **given):
    from studio.web.widgets import to_widget_value

    return [given.get(s.name, to_widget_value(s, s.default)) for s in form.specs]


def test_form_submit_goes_through_the_queue_and_bad_input_names_the_field(web):
    from studio.web.task_form import submit_fn

    ctx = web["ctx"]
    form = _form(web, "test_gradient")
    submit = submit_fn(ctx, form)
    note, job_id = submit(0, *_values(form, steps=2.0, seed=11.0, colour="red"))
    job = ctx.queue.get(job_id)
    assert job["spec"]["steps"] == 2 and job["seed"] == 11 and job["spec"]["colour"] == "red"
    assert job_id[:8] in note
    with pytest.raises(gr.Error, match="width"):
        submit(0, *_values(form, width=3))
    with pytest.raises(gr.Error, match="fail_at"):
        submit(0, *_values(form, steps=2, fail_at="7"))
    with pytest.raises(gr.Error, match="seed"):
        submit(0, *_values(form, seed="lucky"))
    _, auto = submit(0, *_values(form, steps=1))  # empty seed box: the queue picks one
    assert isinstance(ctx.queue.get(auto)["seed"], int)
    wait_for(lambda: ctx.queue.get(job_id), lambda j: j["status"] == "succeeded")


def test_media_widgets_copy_into_uploads_and_mask_comes_from_paint(web, tmp_path):
    from studio.web.task_form import submit_fn

    ctx = web["ctx"]
    image = tmp_path / "photo.png"
    image.write_bytes(png_bytes(16, 20))
    layer = np.zeros((16, 20, 4), np.uint8)
    layer[4:8, 5:10, 3] = 255  # a painted stroke (alpha) on the mask layer
    editor = {"background": np.zeros((16, 20, 4), np.uint8), "layers": [layer], "composite": None}
    form = _form(web, "test_media_echo")
    _, job_id = submit_fn(ctx, form)(0, *_values(form, image=str(image), mask=editor, tags=["a", "b"]))
    spec = ctx.queue.get(job_id)["spec"]
    assert ctx.uploads.contains(spec["image"]) and ctx.uploads.contains(spec["mask"])
    from PIL import Image

    mask = np.asarray(Image.open(spec["mask"]))
    assert mask.shape == (16, 20) and mask[4:8, 5:10].min() == 255 and mask.sum() == 255 * 20
    done = wait_for(lambda: ctx.queue.get(job_id), lambda j: j["status"] in ("succeeded", "failed"))
    assert done["status"] == "succeeded" and done["result"]["data"]["mask_mean"] == pytest.approx(20 / 320)
    with pytest.raises(gr.Error, match="image: .*not a supported"):
        bad = tmp_path / "notes.txt"
        bad.write_text("not an image")
        submit_fn(ctx, form)(0, *_values(form, image=str(bad)))


def test_queue_panel_shows_progress_and_acts(web):
    from studio.web.queue_panel import act, refresh

    ctx = web["ctx"]
    long = ctx.queue.submit("test_gradient", {"steps": 100, "sleep": 0.05})
    queued = ctx.queue.submit("test_gradient", {"steps": 1})
    wait_for(lambda: ctx.queue.get(long["id"]), lambda j: j["status"] == "running" and j["progress"] > 0)
    table, ids, status, bar, preview, output, files, links, memo = refresh(ctx, long["id"], {})
    assert long["id"] in ids and queued["id"] in ids
    row = table.values.tolist()[ids.index(queued["id"])]
    assert row[2] == "queued" and row[3] == 0  # first in the run order
    assert "running" in status and 'data-status="running"' in bar
    assert preview is not None and preview.size[0] > 0  # the live preview decoded from the events
    assert "Run" in act(ctx, "front", queued["id"])
    assert act(ctx, "cancel", queued["id"]) == "Canceled."
    assert "next step" in act(ctx, "cancel", long["id"])
    wait_for(lambda: ctx.queue.get(long["id"]), lambda j: j["status"] == "canceled", timeout=20)
    assert "same seed" in act(ctx, "retry", queued["id"])
    with pytest.raises(gr.Error, match="Select a job"):
        act(ctx, "cancel", "")
    wait_for(lambda: ctx.queue.get(queued["id"]), lambda j: j["status"] == "succeeded")
    # a second tick with nothing new re-sends nothing heavy
    _, _, _, _, preview2, *_ = refresh(ctx, long["id"], memo)
    assert isinstance(preview2, type(gr.skip()))


def test_gallery_lists_outputs_and_reuses_settings(web):
    from studio.web.app import _reuse_fn
    from studio.web.gallery import detail, gallery_items

    ctx = web["ctx"]
    job = ctx.queue.submit("test_gradient", {"steps": 2, "seed": 99, "colour": "green", "width": 40})
    wait_for(lambda: ctx.queue.get(job["id"]), lambda j: j["status"] == "succeeded")
    items, item_ids, choices = gallery_items(ctx)
    assert job["id"] in item_ids and (items[item_ids.index(job["id"])][0]).endswith("gradient.png")
    params, data, image, *_ = detail(ctx, job["id"])
    assert params["seed"] == 99 and params["inputs"]["colour"] == "green" and image.endswith(".png")
    form = _form(web, "test_gradient")
    other = _form(web, "test_media_echo")
    updates = _reuse_fn(ctx, [other, form])(job["id"])
    assert updates[0].selected == "test_gradient"  # switches to the task's tab
    values = dict(zip([s.name for s in form.specs], updates[1 + len(other.specs):]))
    assert values["seed"] == "99" and values["colour"] == "green" and values["width"] == 40  # seed: a text box


def test_web_and_api_share_one_server_and_token(web):
    from studio.api.app import ApiSettings

    app = web["create_app"](web["service"], settings=ApiSettings())
    with TestClient(app) as client:
        page = client.get("/")
        assert page.status_code == 200 and "gradio" in page.text.lower()
        assert client.get("/api/health").json()["status"] == "ok"  # API routes win over the mount
        assert client.get("/config").status_code == 200
    guarded = web["create_app"](web["service"], token="tok", settings=ApiSettings())
    with TestClient(guarded) as browser:
        assert browser.get("/").status_code == 401 and browser.get("/config").status_code == 401
        assert browser.get("/?token=tok").status_code == 200  # sets the cookie the page then uses
        assert browser.get("/config").status_code == 200 and browser.get("/api/health").status_code == 200
