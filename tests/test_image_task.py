"""The image task end to end on the shipped models: bad input named before work, PNGs with
their recipe, progress per step, cancel, adapters stacked and checked against their base."""

import numpy as np
import pytest
from pydantic import ValidationError

from studio.paths import adapter_path, model_path
from studio.tasks.base import CancelToken, Canceled, InputError, RunContext
from studio.tasks.image.task import ImageTask

pytestmark = pytest.mark.skipif(not (model_path("image-lit") / "config.json").exists(), reason="shipped image-lit missing")
ADAPTER = "image-outline"
has_adapter = pytest.mark.skipif(not (adapter_path(ADAPTER) / "adapter_config.json").exists(), reason="adapter missing")


@pytest.fixture(scope="module")
def task():
    return ImageTask()


@pytest.mark.parametrize("raw,field", [
    ({"prompt": ""}, "prompt"),
    ({"prompt": "x" * 301}, "prompt"),
    ({"prompt": "a red circle", "model": "image-xl"}, "model"),
    ({"prompt": "a red circle", "guidance": 0.5}, "guidance"),
    ({"prompt": "a red circle", "steps": 0}, "steps"),
    ({"prompt": "a red circle", "sampler": "plms"}, "sampler"),
    ({"prompt": "a red circle", "num": 100}, "num"),
])
def test_schema_errors_name_the_field(task, raw, field):
    with pytest.raises(ValidationError) as err:
        task.validate(raw)
    assert field in str(err.value)


@pytest.mark.parametrize("raw,field", [
    ({"prompt": "   "}, "prompt"),
    ({"prompt": "a red circle", "size": 30}, "size"),
    ({"prompt": "a red circle", "size": 1000}, "size"),
    ({"prompt": "a red circle", "adapters": ["no-such-adapter:0.5"]}, "adapters"),
    ({"prompt": "a red circle", "adapters": [f"{ADAPTER}:abc"]}, "adapters"),
])
def test_task_checks_name_the_field(task, raw, field):
    with pytest.raises(InputError) as err:
        task.validate(raw)
    assert err.value.field == field


@has_adapter
def test_adapter_for_another_base_is_refused(task):
    with pytest.raises(InputError, match="image-lit"):
        task.validate({"prompt": "a red circle", "model": "image-dit", "adapters": [f"{ADAPTER}:1"]})


def _run(task, raw, tmp_path, cancel=None, seen=None):
    inputs = task.validate(raw)
    pipe = task.load(task.cache_key(inputs))
    ctx = RunContext(seed=inputs.seed or 0, out_dir=tmp_path, recipe={"version": "test"},
                     progress_fn=(lambda f, m, p: seen.append((f, p))) if seen is not None else None,
                     cancel=cancel or CancelToken())
    return task.run(pipe, inputs, ctx)


def test_run_writes_pngs_with_recipe_and_reports_each_step(task, tmp_path):
    from PIL import Image

    from studio.io.media import read_recipe

    seen = []
    res = _run(task, {"prompt": "a large red circle in the center on a plain gray background", "steps": 3, "num": 2, "seed": 5},
               tmp_path, seen=seen)
    assert len(res.files) == 2
    img = np.asarray(Image.open(res.files[0].path))
    assert img.shape == (32, 32, 3)
    recipe = read_recipe(res.files[0].path)
    assert recipe["task"] == "image" and recipe["inputs"]["steps"] == 3 and recipe["model"] == "image-lit"
    assert [round(f, 3) for f, _ in seen] == [round((i + 1) / 3, 3) for i in range(3)]
    assert all(p.shape == (32, 32, 3) and p.dtype == np.uint8 for _, p in seen)


def test_cancel_stops_the_job(task, tmp_path):
    token = CancelToken()
    token.cancel()
    with pytest.raises(Canceled):
        _run(task, {"prompt": "a red circle", "steps": 3, "num": 1}, tmp_path, cancel=token)
    assert not list(tmp_path.glob("*.png"))


@has_adapter
def test_adapters_stack_by_weight(task, tmp_path):
    from PIL import Image

    raw = {"prompt": "a large red circle in the center on a plain gray background", "steps": 3, "num": 1, "seed": 1}
    outs = []
    for adapters in ([], [f"{ADAPTER}:1.0"], [f"{ADAPTER}:0.3"]):
        res = _run(task, {**raw, "adapters": adapters}, tmp_path / str(len(outs)))
        outs.append(np.asarray(Image.open(res.files[0].path)).astype(int))
    assert np.abs(outs[0] - outs[1]).mean() > np.abs(outs[0] - outs[2]).mean() > 0
