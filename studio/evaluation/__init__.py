"""Shared metric pieces: Fréchet distance on features, a small multi-head image classifier
(trainer + feature extractor) that plugins train on their own real data."""

from studio.evaluation.classifier import (ClassifierSpec, ImageClassifier, accuracy, extract_features,
                                          load_classifier, predict, save_classifier, train_classifier)
from studio.evaluation.frechet import feature_stats, frechet_distance, frechet_from_stats

__all__ = [
    "frechet_distance", "frechet_from_stats", "feature_stats",
    "ClassifierSpec", "ImageClassifier", "train_classifier", "extract_features", "predict", "accuracy",
    "save_classifier", "load_classifier",
]
