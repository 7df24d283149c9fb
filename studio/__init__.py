"""Studio: a multimodal generation studio — seven paper-backed task plugins on one transformer core."""

__version__ = "0.1.0"
