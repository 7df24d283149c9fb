"""Shared metric pieces: Fréchet distance maths and the multi-head classifier."""

import numpy as np
import pytest

from studio.evaluation import (ClassifierSpec, accuracy, extract_features, frechet_distance, load_classifier,
                               predict, save_classifier, train_classifier)


def test_frechet_distance_of_gaussians():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4000, 3))
    assert frechet_distance(a, rng.normal(size=(4000, 3))) < 0.02
    # pure mean shift: FD = ‖Δμ‖²
    assert frechet_distance(a, a + np.array([1.0, 2.0, 0.0])) == pytest.approx(5.0, rel=1e-6)
    # scale σ → 2σ per dim: (2 − 1)² per dimension
    assert frechet_distance(a, 2 * a) == pytest.approx(3 * 1.0, rel=0.05)


def test_frechet_distance_rejects_bad_shapes():
    with pytest.raises(ValueError, match="feats"):
        frechet_distance(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(ValueError, match="feats"):
        frechet_distance(np.zeros((1, 3)), np.zeros((5, 3)))


def _two_colour_set(n, seed):
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 2, n)
    img = np.zeros((n, 16, 16, 3), np.uint8)
    for i, y in enumerate(label):
        x0, y0 = rng.integers(0, 8, 2)
        img[i, y0:y0 + 8, x0:x0 + 8, 0 if y == 0 else 2] = 230
    return img, label


def test_classifier_learns_and_round_trips(tmp_path):
    img, y = _two_colour_set(256, 0)
    spec = ClassifierSpec(heads={"colour": 2}, size=16, width=8, feature_dim=16)
    model = train_classifier(img, {"colour": y}, spec, steps=40, batch_size=32, lr=3e-3)
    test_img, test_y = _two_colour_set(100, 1)
    acc = accuracy(predict(model, test_img), {"colour": test_y})
    assert acc["colour"] > 0.95 and acc["all"] == acc["colour"]
    feats = extract_features(model, test_img)
    assert feats.shape == (100, 16)
    back = load_classifier(save_classifier(model, tmp_path / "clf"))
    assert np.allclose(extract_features(back, test_img), feats, atol=1e-5)
    # larger inputs are resized to the classifier's size
    big = np.repeat(np.repeat(test_img, 2, 1), 2, 2)
    assert (predict(model, big)["colour"] == predict(model, test_img)["colour"]).mean() > 0.9


def test_classifier_spec_validates():
    with pytest.raises(ValueError, match="heads"):
        ClassifierSpec(heads={})
    with pytest.raises(ValueError, match="heads"):
        ClassifierSpec(heads={"x": 1})
