"""run_job: staging then atomic publish, nothing left on failure/cancel, model cache reuse."""

import numpy as np
import pytest
from PIL import Image

from studio.io.media import read_recipe
from studio.jobs.cache import ModelCache
from studio.jobs.runner import run_job
from studio.tasks.base import Canceled, CancelToken


def _pixels(path):
    return np.asarray(Image.open(path))


def test_run_job_publishes_files_with_recipe(tmp_path, gradient_task):
    seen = []
    result = run_job("test_gradient", {"steps": 3, "colour": "red"}, 5, tmp_path / "day" / "job1",
                     progress_fn=lambda f, m, p: seen.append((f, p is not None)))
    png = result.files[0].path
    assert png == tmp_path / "day" / "job1" / "gradient.png" and png.exists()
    assert [f for f, _ in seen] == pytest.approx([1 / 3, 2 / 3, 1.0]) and all(p for _, p in seen)
    recipe = read_recipe(png)
    assert recipe["task"] == "test_gradient" and recipe["seed"] == 5 and recipe["inputs"]["colour"] == "red"
    assert recipe["model"]["name"] == "gradient-a"
    # the seed decides the pixels; another seed gives another image
    again = run_job("test_gradient", {"steps": 3, "colour": "red"}, 5, tmp_path / "day" / "job2")
    other = run_job("test_gradient", {"steps": 3, "colour": "red"}, 6, tmp_path / "day" / "job3")
    assert again.files[0].path.read_bytes() == png.read_bytes()
    assert not np.array_equal(_pixels(other.files[0].path), _pixels(png))


def test_failure_and_cancel_leave_nothing(tmp_path, gradient_task):
    with pytest.raises(RuntimeError, match="step 1"):
        run_job("test_gradient", {"steps": 3, "fail_at": 1}, 1, tmp_path / "d" / "failed")
    token = CancelToken()
    calls = []

    def progress(f, m, p):
        calls.append(f)
        token.cancel()  # canceled after the first step; the next step's check stops it

    with pytest.raises(Canceled):
        run_job("test_gradient", {"steps": 5}, 1, tmp_path / "d" / "canceled", progress, token)
    assert len(calls) == 1
    leftovers = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert leftovers == []
    assert not (tmp_path / "d" / "failed").exists() and not (tmp_path / "d" / "canceled").exists()


def test_model_cache_loads_once_per_key_and_evicts_lru(tmp_path, gradient_task):
    import tests.fixtures_tasks as fx

    cache = ModelCache(budget_bytes=(2 << 20) + 1)  # room for two 1 MiB pipelines
    fx.LOADS.clear()
    first = run_job("test_gradient", {"model": "m1"}, 1, tmp_path / "a", cache=cache)
    second = run_job("test_gradient", {"model": "m1"}, 2, tmp_path / "b", cache=cache)
    assert first.data["load_number"] == second.data["load_number"] == 1 and fx.LOADS["m1"] == 1
    assert cache.stats.hits == 1 and cache.stats.misses == 1
    run_job("test_gradient", {"model": "m2"}, 1, tmp_path / "c", cache=cache)
    run_job("test_gradient", {"model": "m3"}, 1, tmp_path / "d", cache=cache)  # evicts m1 (least recent)
    assert cache.stats.evictions == 1 and [k[1].model for k in cache.keys()] == ["m2", "m3"]
    run_job("test_gradient", {"model": "m1"}, 1, tmp_path / "e", cache=cache)
    assert fx.LOADS["m1"] == 2
    with pytest.raises(ValueError, match="budget"):
        ModelCache(0)
