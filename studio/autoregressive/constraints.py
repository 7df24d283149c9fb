"""Constraint hooks: a per-sequence state machine that says which tokens may come next.

A grammar (REMI event order, 3D token layout...) subclasses ``Constraint``; the decode loop asks
each row's constraint for its mask before sampling and tells it the chosen token afterwards.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Sequence

import torch


class Constraint(ABC):
    @abstractmethod
    def allowed(self, vocab_size: int) -> torch.Tensor:
        """(V,) bool: True where the next token may be this id."""

    @abstractmethod
    def advance(self, token: int) -> None:
        """Consume the chosen token."""

    def advance_many(self, tokens: Sequence[int]) -> None:
        for t in tokens:
            self.advance(int(t))


def apply_constraints(logits: torch.Tensor, constraints: Sequence[Constraint | None]) -> torch.Tensor:
    """Mask (B, V) logits row by row; a row whose constraint allows nothing is left unmasked."""
    masks = []
    for c in constraints:
        m = torch.ones(logits.shape[-1], dtype=torch.bool) if c is None else c.allowed(logits.shape[-1])
        masks.append(m if bool(m.any()) else torch.ones_like(m))
    mask = torch.stack(masks).to(logits.device)  # (B, V)
    return logits.masked_fill(~mask, float("-inf"))
