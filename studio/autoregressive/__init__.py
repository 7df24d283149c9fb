"""Shared autoregressive decoding: sampling filters, constraint hooks, the decode loop.

Used by ``music`` (REMI events) and meant for ``shape3d`` (3D tokens): the loop knows nothing of
either; a model is a ``StepModel`` and a grammar is a ``Constraint``.
"""

from studio.autoregressive.constraints import Constraint, apply_constraints
from studio.autoregressive.decode import DecodeSpec, StepModel, generate
from studio.autoregressive.sampling import SamplingSpec, filter_logits, sample_next

__all__ = [
    "Constraint",
    "DecodeSpec",
    "SamplingSpec",
    "StepModel",
    "apply_constraints",
    "filter_logits",
    "generate",
    "sample_next",
]
