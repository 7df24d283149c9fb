"""The vfx task's inputs: schema, bad input named by field before any work, box/point → mask."""

import numpy as np
import pytest
from pydantic import ValidationError

from studio.tasks.base import InputError
from studio.tasks.vfx.inputs import mask_from_box, mask_from_point, read_image, to_model_size
from studio.tasks.vfx.task import VfxTask, default_prompt, overlay

SCENE = "examples/vfx/scene.png"
MASK = "examples/vfx/heart_mask.png"


@pytest.fixture(scope="module")
def task():
    return VfxTask()


def check_field(task, raw, field, monkeypatch):
    monkeypatch.setattr(VfxTask, "_check_models", lambda self, inputs: None)  # models may not be trained here
    with pytest.raises((InputError, ValidationError)) as e:
        task.validate(raw)
    err = e.value
    if isinstance(err, InputError):
        assert err.field == field, err
    else:
        assert any(field in map(str, x["loc"]) for x in err.errors()), err


def test_schema_marks_media_fields(task):
    props = task.json_schema()["properties"]
    assert props["image"]["media"] == "image" and props["mask"]["media"] == "mask"
    assert "explode" in str(props["effect"])


@pytest.mark.parametrize("raw,field", [
    ({"effect": "explode"}, "image"),
    ({"image": SCENE, "effect": "teleport"}, "effect"),
    ({"image": SCENE, "start": 1.0, "end": 0.5}, "end"),
    ({"image": SCENE, "start": 1.0, "end": 1.0}, "end"),
    ({"image": SCENE, "start": 0.5, "end": 2.5}, "end"),  # a 16-frame clip ends at 1.875 s
    ({"image": SCENE, "start": -0.5, "end": 1.0}, "start"),
    ({"image": SCENE, "frames": 15}, "frames"),
    ({"image": SCENE, "frames": 64}, "frames"),
    ({"image": SCENE, "prompt": "   "}, "prompt"),
    ({"image": "does/not/exist.png"}, "image"),
    ({"image": SCENE, "box": "1,2,3"}, "box"),
    ({"image": SCENE, "box": "50,50,10,10"}, "box"),
    ({"image": SCENE, "point": "500,3"}, "point"),
    ({"image": SCENE, "mask": MASK, "point": "3,3"}, "point"),
    ({"image": SCENE, "guidance": 2.0, "guidance_scope": "everywhere"}, "guidance_scope"),
    ({"image": SCENE, "guidance": 2.0, "guidance_min_timestep": 1200}, "guidance_min_timestep"),
    ({"image": SCENE, "steps": 0}, "steps"),
    ({"image": SCENE, "colour": "red"}, "colour"),
])
def test_bad_input_names_the_field(task, raw, field, monkeypatch):
    check_field(task, raw, field, monkeypatch)


def test_corrupt_image_empty_mask_and_wrong_size_mask(task, tmp_path, monkeypatch):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image at all")
    check_field(task, {"image": str(bad)}, "image", monkeypatch)
    import cv2

    empty = tmp_path / "empty.png"
    cv2.imwrite(str(empty), np.zeros((128, 128), np.uint8))
    check_field(task, {"image": SCENE, "mask": str(empty)}, "mask", monkeypatch)
    small = tmp_path / "small.png"
    cv2.imwrite(str(small), np.full((64, 64), 255, np.uint8))
    check_field(task, {"image": SCENE, "mask": str(small)}, "mask", monkeypatch)


def test_unknown_model_and_adapter_are_named(task, tmp_path, monkeypatch):
    monkeypatch.setenv("STUDIO_MODELS", str(tmp_path))
    with pytest.raises(InputError) as e:
        task.validate({"image": SCENE, "model": "nope"})
    assert e.value.field == "model"


def test_good_input_passes(task, monkeypatch):
    monkeypatch.setattr(VfxTask, "_check_models", lambda self, inputs: None)
    inputs = task.validate({"image": SCENE, "mask": MASK, "effect": "melt", "start": 0.25, "end": 1.5})
    assert inputs.effect == "melt" and inputs.frames == 16


def test_box_and_point_become_masks_of_the_object():
    import cv2

    img = read_image(SCENE)
    truth = cv2.imread(MASK, cv2.IMREAD_GRAYSCALE) > 127  # the heart
    ys, xs = np.nonzero(truth)
    box = mask_from_box(img, (xs.min() - 3, ys.min() - 3, xs.max() + 4, ys.max() + 4))
    iou = (box & truth).sum() / (box | truth).sum()
    assert iou > 0.8, iou
    point = mask_from_point(img, (int(xs.mean()), int(ys.mean())))
    assert (point & truth).sum() / (point | truth).sum() > 0.6


def test_any_size_is_resized_and_cropped_with_its_mask():
    img = np.zeros((90, 160, 3), np.uint8)
    mask = np.zeros((90, 160), bool)
    mask[30:60, 70:100] = True
    ref, m = to_model_size(img, mask, 32)
    assert ref.shape == (32, 32, 3) and m.shape == (32, 32) and m.any()
    gone = np.zeros((90, 160), bool)
    gone[:, :5] = True  # cropped away
    with pytest.raises(InputError) as e:
        to_model_size(img, gone, 32)
    assert e.value.field == "mask"


def test_default_prompt_names_the_colour_and_overlay_shape():
    ref = np.zeros((32, 32, 3), np.uint8)
    ref[8:16, 8:16] = (220, 38, 38)
    mask = np.zeros((32, 32), bool)
    mask[8:16, 8:16] = True
    assert default_prompt(ref, mask, "explode") == "the red object explodes"
    assert overlay(np.repeat(ref[None], 4, 0), mask).shape == (4, 256, 256, 3)
