"""``StepModel`` adapters: how each music model is driven by the shared decoding loop.

``ThemeStepper`` keeps, per row, a ``RemiTracker`` that labels each new token online (gate and
theme-aligned offset) and the decoder's KV caches (self-attention trimmed to a sliding window;
the theme's cross-attention keys computed once). Without a state it recomputes everything from
the whole sequence, cropped to the model's context: the reference the cache must equal, and the
speed baseline.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from studio.core.blocks import DecoderCache, make_caches
from studio.tasks.music.grammar import RemiTracker, track
from studio.tasks.music.model import PromptDecoder, ThemeTransformer, trim_cache
from studio.tasks.music.vocab import VOCAB, Vocab


@dataclass
class StepState:
    caches: list[DecoderCache]
    window: int
    trackers: list[RemiTracker] = field(default_factory=list)
    pos: int = 0  # absolute position of the next token


class ThemeStepper:
    def __init__(self, model: ThemeTransformer, theme: torch.Tensor, theme_offsets: torch.Tensor,
                 theme_mask: torch.Tensor | None = None, vocab: Vocab = VOCAB, autocast=None, context: int | None = None):
        self.model, self.vocab = model, vocab
        self.context = context or model.config.context  # no-cache recompute span
        self.theme_mask = theme_mask if theme_mask is not None else torch.ones_like(theme, dtype=torch.bool)
        self.autocast = autocast
        with self._ctx():
            self.memory = model.encode_theme(theme, theme_offsets, self.theme_mask)  # (B, M, D)

    def _ctx(self):
        import contextlib

        return self.autocast() if self.autocast else contextlib.nullcontext()

    def new_state(self, batch: int, window: int | None) -> StepState:
        w = window or self.context
        return StepState(make_caches(len(self.model.layers)), w, [RemiTracker(self.vocab) for _ in range(batch)])

    def forward(self, tokens: torch.Tensor, state: StepState | None) -> torch.Tensor:
        if state is None:
            return self._full(tokens)
        labels = [[t.step(int(x)) for x in row] for t, row in zip(state.trackers, tokens.tolist())]
        gates = torch.tensor([[g for g, _ in r] for r in labels], device=tokens.device)  # (B, N)
        offsets = torch.tensor([[o for _, o in r] for r in labels], device=tokens.device)
        n = tokens.shape[1]
        positions = torch.arange(state.pos, state.pos + n, device=tokens.device)
        first = state.caches[0].cross_attn.k is None
        with self._ctx():
            logits = self.model(tokens, gates, offsets, self.memory if first else None,
                                self.theme_mask, positions, state.caches)
        state.pos += n
        for c in state.caches:
            trim_cache(c.self_attn, state.window)
        return logits.float()

    def _full(self, tokens: torch.Tensor) -> torch.Tensor:
        labels = [track(row, self.vocab)[:2] for row in tokens.tolist()]
        gates = torch.tensor([g for g, _ in labels], device=tokens.device)
        offsets = torch.tensor([o for _, o in labels], device=tokens.device)
        start = max(0, tokens.shape[1] - self.context)
        positions = torch.arange(start, tokens.shape[1], device=tokens.device)
        with self._ctx():
            logits = self.model(tokens[:, start:], gates[:, start:], offsets[:, start:], self.memory, self.theme_mask, positions)
        return logits.float()


class BaselineStepper:
    def __init__(self, model: PromptDecoder, autocast=None):
        self.model, self.autocast = model, autocast

    def _ctx(self):
        import contextlib

        return self.autocast() if self.autocast else contextlib.nullcontext()

    def new_state(self, batch: int, window: int | None) -> StepState:
        return StepState(make_caches(len(self.model.layers)), window or self.model.config.context)

    def forward(self, tokens: torch.Tensor, state: StepState | None) -> torch.Tensor:
        if state is None:
            C = self.model.config.context
            start = max(0, tokens.shape[1] - C)
            positions = torch.arange(start, tokens.shape[1], device=tokens.device)
            with self._ctx():
                return self.model(tokens[:, start:], positions).float()
        n = tokens.shape[1]
        positions = torch.arange(state.pos, state.pos + n, device=tokens.device)
        with self._ctx():
            logits = self.model(tokens, positions, state.caches)
        state.pos += n
        for c in state.caches:
            trim_cache(c.self_attn, state.window)
        return logits.float()
