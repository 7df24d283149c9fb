"""The captioned procedural set: determinism, captions say the picture, unseen combinations held
out, kohya folder round trip and bad folders."""

import numpy as np
import pytest

from studio.data.shapes import COLOURS
from studio.tasks.image.data import (UNSEEN_PAIRS, CaptionSpec, caption_of, export_folder, import_folder,
                                     make_split)


def test_same_seed_same_set_other_seed_other_set():
    a, b, c = make_split("train", 12, seed=3), make_split("train", 12, seed=3), make_split("train", 12, seed=4)
    assert np.array_equal(a.images, b.images) and a.captions == b.captions
    assert not np.array_equal(a.images, c.images)


def test_unseen_pairs_only_in_the_unseen_split():
    train = make_split("train", 300, seed=0)
    unseen = make_split("unseen", 50, seed=0)
    assert not {(s.shape, s.colour) for s in train.specs} & UNSEEN_PAIRS
    assert {(s.shape, s.colour) for s in unseen.specs} <= UNSEEN_PAIRS
    # every shape and colour of an unseen pair is still seen in training, just not together
    assert {s for s, _ in UNSEEN_PAIRS} <= {s.shape for s in train.specs}
    assert {c for _, c in UNSEEN_PAIRS} <= {s.colour for s in train.specs}


def test_heldout_split_differs_from_train():
    train, held = make_split("train", 20, seed=0), make_split("heldout", 20, seed=0)
    assert not np.array_equal(train.images, held.images)


def test_caption_says_the_attributes():
    spec = CaptionSpec("triangle", "red", "small", 2, None, "striped", "blue")
    assert caption_of(spec) == "two small red triangles on a striped blue background"
    one = CaptionSpec("circle", "green", "large", 1, "in the top left", "plain", "gray")
    assert caption_of(one) == "a large green circle in the top left on a plain gray background"


def test_picture_shows_the_caption_colour():
    data = make_split("train", 30, seed=5, size=64)
    for img, spec in zip(data.images, data.specs):
        target = np.array(COLOURS[spec.colour], float)
        close = (np.abs(img.astype(float) - target).sum(-1) < 40).mean()
        assert close > 0.01, spec  # the object's colour is really in the image


def test_32_and_64_px():
    assert make_split("train", 2, size=32).images.shape == (2, 32, 32, 3)
    assert make_split("train", 2, size=64).images.shape == (2, 64, 64, 3)


def test_kohya_folder_round_trip(tmp_path):
    data = make_split("train", 5, seed=1)
    export_folder(data, tmp_path / "set")
    assert sorted(p.name for p in (tmp_path / "set").iterdir())[:2] == ["00000.png", "00000.txt"]
    back = import_folder(tmp_path / "set", size=32)
    assert back.captions == data.captions
    assert np.array_equal(back.images, data.images)


def test_kohya_repeats_and_folder_concept(tmp_path):
    data = make_split("train", 2, seed=1)
    export_folder(data, tmp_path / "root" / "3_my style")
    (tmp_path / "root" / "3_my style" / "00001.txt").unlink()
    back = import_folder(tmp_path / "root", size=16)
    assert len(back) == 6 and back.images.shape[1:] == (16, 16, 3)
    assert back.captions.count("my style") == 3


def test_bad_folders_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="dataset folder"):
        import_folder(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images"):
        import_folder(tmp_path / "empty")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="x.png"):
        import_folder(tmp_path / "bad")


def test_unknown_split_is_an_error():
    with pytest.raises(ValueError, match="split"):
        make_split("validation", 3)
