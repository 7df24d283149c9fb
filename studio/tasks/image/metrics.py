"""Image metrics: prompt accuracy and Fréchet distance in the feature space of a classifier trained
on real (procedural) images with shape, colour and count heads.

The classifier ships in ``datasets/image/classifier`` (made by :func:`train_eval_classifier`);
it is retrained when missing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from studio.evaluation import (ClassifierSpec, accuracy, extract_features, frechet_distance, load_classifier,
                               predict, save_classifier, train_classifier)
from studio.paths import datasets_dir
from studio.tasks.image.data import HEADS, CaptionSpec, ImageSet, make_split

CLASSIFIER_SPEC = ClassifierSpec(heads=HEADS, size=32, width=16, feature_dim=64)
EVAL_SEED = 1  # evaluation sets use their own seed, never the training seed 0


def classifier_dir() -> Path:
    return datasets_dir() / "image" / "classifier"


def train_eval_classifier(n_train: int = 8000, steps: int = 1000, seed: int = 0, folder: Path | None = None) -> dict:
    """Train the evaluation classifier on real images of every (shape, colour) pair; report its
    accuracy on the held-out and unseen-pair evaluation sets (other seeds)."""
    train = make_split("all", n_train, seed=100 + seed)
    model = train_classifier(train.images, train.labels(), CLASSIFIER_SPEC, steps=steps, batch_size=64, seed=seed)
    save_classifier(model, folder or classifier_dir())
    report = {}
    for split in ("heldout", "unseen"):
        real = make_split(split, 500, seed=EVAL_SEED)
        report[split] = accuracy(predict(model, real.images), real.labels())
    (Path(folder or classifier_dir()) / "accuracy.json").write_text(__import__("json").dumps(report, indent=2))
    return report


def get_classifier(folder: Path | None = None):
    folder = folder or classifier_dir()
    if not (folder / "classifier.safetensors").exists():
        train_eval_classifier(folder=folder)
    return load_classifier(folder)


def prompt_accuracy(classifier, images: np.ndarray, specs: list[CaptionSpec]) -> dict[str, float]:
    """Per-attribute accuracy of generated ``images`` against the specs of their prompts, and
    ``all`` = shape, colour and count all right."""
    labels = ImageSet(images, [""] * len(specs), specs).labels()
    return accuracy(predict(classifier, images), labels)


def fd(classifier, images_a: np.ndarray, images_b: np.ndarray) -> float:
    return frechet_distance(extract_features(classifier, images_a), extract_features(classifier, images_b))
