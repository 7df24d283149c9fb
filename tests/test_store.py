"""studio.store: staging → atomic publish, leftovers of dead writers swept, recipes reproducible."""

import os
import subprocess
import sys

import numpy as np

from studio.jobs.preview import encode_preview
from studio.store.outputs import STAGING, OutputStore
from studio.store.recipe import inputs_of, make_recipe
from studio.tasks.base import ModelKey


def test_staging_commit_replaces_and_discards(tmp_path):
    store = OutputStore(tmp_path)
    final = store.final_dir("job1", 0.0)
    assert final == tmp_path / "1970-01-01" / "job1"
    first = store.staging_dir("job1")
    (first / "a.txt").write_text("old")
    store.commit(first, final)
    second = store.staging_dir("job1")  # a rerun of the same job (e.g. requeued) replaces the folder
    (second / "b.txt").write_text("new")
    store.commit(second, final)
    assert sorted(p.name for p in final.iterdir()) == ["b.txt"]
    third = store.staging_dir("job2")
    store.discard(third)
    assert not third.exists()


def test_sweep_removes_only_staging_of_dead_processes(tmp_path):
    store = OutputStore(tmp_path)
    mine = store.staging_dir("alive")  # this process is alive: kept
    dead_pid = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout.strip()
    dead = tmp_path / STAGING / f"job-{dead_pid}-0"
    dead.mkdir()
    (dead / "half.png").write_bytes(b"\x89PNG")
    assert store.sweep_dead() == 1
    assert mine.exists() and not dead.exists()
    other = store.staging_dir("killed")
    store.discard_for("killed", os.getpid())
    assert not other.exists()


def test_recipe_is_deterministic_and_round_trips():
    key = ModelKey("some-model", (("style", 0.5),))
    a = make_recipe("image", {"prompt": "x", "seed": None}, 9, key)
    b = make_recipe("image", {"prompt": "x", "seed": None}, 9, key)
    assert a == b and a["seed"] == 9 and a["inputs"]["seed"] == 9
    assert a["model"] == {"name": "some-model", "hash": None}  # not on disk: no hash to record
    assert a["adapters"] == [{"name": "style", "weight": 0.5, "hash": None}]
    assert set(a) == {"studio_version", "task", "seed", "inputs", "model", "adapters"}
    assert inputs_of(a) == ("image", {"prompt": "x", "seed": 9}, 9)


def test_previews_are_small_pngs_from_any_image_like():
    import torch

    for preview in (np.zeros((300, 200, 3), np.uint8), np.random.rand(40, 40, 3), torch.rand(3, 64, 64),
                    np.random.rand(16, 16)):
        url = encode_preview(preview)
        assert url.startswith("data:image/png;base64,")
    import base64
    import io

    from PIL import Image

    im = Image.open(io.BytesIO(base64.b64decode(encode_preview(np.zeros((300, 200, 3), np.uint8)).split(",")[1])))
    assert max(im.size) == 128
    assert encode_preview(None) is None
