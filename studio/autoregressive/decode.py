"""The decoding loop: prompt -> tokens, with or without a KV cache, constraints, a seed.

A model plugs in as a ``StepModel``:
- ``new_state(batch, window)`` returns whatever the model keeps between steps (KV caches, trackers);
  the model trims its caches to the last ``window`` tokens (sliding window beyond the context).
- ``forward(tokens, state)`` returns (B, T, V) logits. With a state, ``tokens`` are only the new
  tokens (the prompt first, then one token per step) and the cache grows. With ``state=None`` the
  whole sequence so far is passed and recomputed (the no-cache reference and speed baseline); the
  model crops it to its own window.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

import torch

from studio.autoregressive.constraints import Constraint, apply_constraints
from studio.autoregressive.sampling import SamplingSpec, sample_next


class StepModel(Protocol):
    def new_state(self, batch: int, window: int | None) -> Any: ...

    def forward(self, tokens: torch.Tensor, state: Any | None) -> torch.Tensor: ...


@dataclass(frozen=True)
class DecodeSpec:
    max_new_tokens: int
    sampling: SamplingSpec = field(default_factory=SamplingSpec)
    use_cache: bool = True
    window: int | None = None  # self-attention span while decoding; None = the model's context
    eos_id: int | None = None  # rows stop after it; the loop ends when all rows stopped
    pad_id: int = 0  # what a stopped row emits

    def __post_init__(self):
        if self.max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be >= 0, got {self.max_new_tokens}")
        if self.window is not None and self.window < 1:
            raise ValueError(f"window must be >= 1, got {self.window}")


StepCallback = Callable[[int, int, torch.Tensor], None]  # (step, total, tokens so far); may raise to cancel


@torch.no_grad()
def generate(
    model: StepModel,
    prompt: torch.Tensor,
    spec: DecodeSpec,
    constraints: Sequence[Constraint | None] | None = None,
    generator: torch.Generator | None = None,
    callback: StepCallback | None = None,
) -> torch.Tensor:
    """(B, T0) prompt -> (B, T0 + n) tokens, n <= max_new_tokens."""
    B = prompt.shape[0]
    if constraints is not None and len(constraints) != B:
        raise ValueError(f"constraints: need one per row ({B}), got {len(constraints)}")
    for c, row in zip(constraints or (), prompt.tolist()):
        if c is not None:
            c.advance_many(row)
    state = model.new_state(B, spec.window) if spec.use_cache else None
    seq = prompt
    done = torch.zeros(B, dtype=torch.bool, device=prompt.device)
    logits = model.forward(prompt, state)[:, -1]  # (B, V)
    for i in range(spec.max_new_tokens):
        if constraints is not None:
            logits = apply_constraints(logits, constraints)
        nxt = sample_next(logits, spec.sampling, generator)  # (B,)
        nxt = torch.where(done, torch.full_like(nxt, spec.pad_id), nxt)
        seq = torch.cat([seq, nxt[:, None]], dim=1)  # (B, T+1)
        for b, c in enumerate(constraints or ()):
            if c is not None and not done[b]:
                c.advance(int(nxt[b]))
        if spec.eos_id is not None:
            done |= nxt == spec.eos_id
        if callback is not None:
            callback(i, spec.max_new_tokens, seq)
        if bool(done.all()) or i + 1 == spec.max_new_tokens:
            break
        logits = (model.forward(nxt[:, None], state) if state is not None else model.forward(seq, None))[:, -1]
    return seq
