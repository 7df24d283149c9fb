"""The shared drawing layer: determinism, masks agree with pixels, bad specs rejected."""

import numpy as np
import pytest

from studio.data.shapes import (
    COLOURS, SHAPES, TEXTURES, Background, ObjectSpec, Scene, draw_scene, random_scene,
)


def test_random_scene_is_deterministic_by_seed():
    a = draw_scene(random_scene(np.random.default_rng(7)), 32)
    b = draw_scene(random_scene(np.random.default_rng(7)), 32)
    c = draw_scene(random_scene(np.random.default_rng(8)), 32)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


@pytest.mark.parametrize("shape", SHAPES)
def test_mask_covers_the_object_colour(shape):
    scene = Scene((ObjectSpec(shape, "yellow", 0.6),), Background("plain", "blue"))
    img, masks = draw_scene(scene, 64)
    assert img.shape == (64, 64, 3) and img.dtype == np.uint8 and masks.shape == (1, 64, 64)
    inside = img[masks[0]].astype(float)
    outside = img[~masks[0]].astype(float)
    yellow = np.array(COLOURS["yellow"], float)
    assert masks[0].mean() > 0.08
    assert np.abs(inside - yellow).mean() < 25  # mask pixels are the object's colour
    assert np.abs(outside - yellow).mean() > 100  # and the rest is not


def test_later_objects_occlude_earlier_masks():
    a = ObjectSpec("square", "red", 0.6, (0.5, 0.5))
    b = ObjectSpec("circle", "green", 0.3, (0.5, 0.5))
    _, masks = draw_scene(Scene((a, b)), 32)
    assert not (masks[0] & masks[1]).any()
    assert masks[1].sum() > 20


def test_every_texture_differs_from_plain():
    plain, _ = draw_scene(Scene((), Background("plain", "green")), 32)
    for tex in TEXTURES[1:]:
        img, _ = draw_scene(Scene((), Background(tex, "green")), 32)
        assert np.abs(img.astype(int) - plain).mean() > 3, tex


@pytest.mark.parametrize("kwargs,field", [
    ({"shape": "blob", "colour": "red"}, "shape"),
    ({"shape": "circle", "colour": "mauve"}, "colour"),
    ({"shape": "circle", "colour": "red", "size": 0}, "size"),
    ({"shape": "circle", "colour": "red", "fill": "hatched"}, "fill"),
])
def test_bad_object_spec_names_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        ObjectSpec(**kwargs)
