"""Generation: theme (MIDI or retrieved from a piece) -> a new piece where the theme recurs.

``MusicPipeline`` is what ``MusicTask.load`` returns and the evaluation drives: the generator
model (Theme Transformer, or the prompt baseline), the theme retriever, device and precision.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import torch

from studio.autoregressive import DecodeSpec, SamplingSpec, generate
from studio.tasks.music.grammar import RemiGrammar, max_tokens
from studio.tasks.music.model import PromptDecoder, ThemeTransformer
from studio.tasks.music.stepper import BaselineStepper, ThemeStepper
from studio.tasks.music.themes import MelodyEncoder, ThemeResult, find_theme
from studio.tasks.music.tokenizer import MELODY, Song, events_to_song
from studio.tasks.music.vocab import VOCAB
from studio.tasks.music.windows import MAX_THEME_TOKENS, theme_events, theme_inputs

MAX_THEME_BARS = 4
TOKENS_PER_BAR = 96  # budget per bar when sampling without the grammar (dense chorale bars use ~60)


class ThemeError(ValueError):
    """The theme cannot be used (too long, no melody); ``field`` names the input."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


@dataclass
class Generated:
    song: Song  # tempo set, theme regions = the model's own markers (theme model) or detected ones
    tokens: list[int]
    valid: bool  # grammar-valid (always true with constraints on)
    model: str


def load_models(model_dir: Path, device: str = "cpu", dtype: torch.dtype = torch.float32):
    """(generator model, kind) from a shipped folder; the class is read from its config.json."""
    import json

    from studio.core.checkpoint import load_model

    cls_name = json.loads((model_dir / "config.json").read_text()).get("_class_name")
    cls = {"ThemeTransformer": ThemeTransformer, "PromptDecoder": PromptDecoder}.get(cls_name)
    if cls is None:
        raise ValueError(f"model: {model_dir} holds a {cls_name}, not a music model")
    return load_model(cls, model_dir, device=device, dtype=dtype)


class MusicPipeline:
    def __init__(self, model: ThemeTransformer | PromptDecoder, retriever: MelodyEncoder, name: str = "",
                 device: str = "cpu", autocast_dtype: torch.dtype | None = None):
        self.model, self.retriever, self.name, self.device = model.eval(), retriever.eval(), name, device
        self.autocast_dtype = autocast_dtype

    @property
    def is_theme_model(self) -> bool:
        return isinstance(self.model, ThemeTransformer)

    def autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(torch.device(self.device).type, dtype=self.autocast_dtype)

    # 1. the theme
    def theme_from_midi_song(self, song: Song) -> Song:
        """The melody of a theme file; at most MAX_THEME_BARS bars."""
        song = replace(song, notes=[n for n in song.notes if n.track == MELODY], themes=[])
        last_bar = max(i for i, s in enumerate(song.bar_starts) if s <= max(n.start for n in song.notes))
        if last_bar + 1 > MAX_THEME_BARS:
            raise ThemeError("theme", f"the theme is {last_bar + 1} bars long; at most {MAX_THEME_BARS} are allowed")
        theme = song.slice_bars(0, last_bar + 1, tracks=(MELODY,))
        if len(self.theme_ids(theme)[0]) > MAX_THEME_TOKENS:
            raise ThemeError("theme", f"the theme has too many notes (more than {MAX_THEME_TOKENS} events)")
        return theme

    def theme_from_piece(self, song: Song) -> tuple[Song, ThemeResult]:
        res = find_theme(song, self.retriever)
        if res is None:
            raise ThemeError("from_piece", "no recurring 2-bar melody found in the piece, so no theme to retrieve")
        return song.slice_bars(res.theme_bar, res.theme_bar + res.bars, tracks=(MELODY,)), res

    def theme_ids(self, theme: Song) -> tuple[list[int], list[int]]:
        return theme_inputs(theme_events(theme, 0, len(theme.bars)))

    # 2. decoding
    def generate(self, theme: Song, bars: int = 32, temperature: float = 1.2, top_p: float = 0.9, top_k: int = 0,
                 generator: torch.Generator | None = None, tempo: int | None = None, constrained: bool = True,
                 callback: Callable[[int, int, torch.Tensor], None] | None = None) -> Generated:
        return self.generate_many(theme, 1, bars, temperature, top_p, top_k, generator, tempo, constrained, callback)[0]

    def generate_many(self, theme: Song, num_samples: int, bars: int = 32, temperature: float = 1.2, top_p: float = 0.9,
                      top_k: int = 0, generator: torch.Generator | None = None, tempo: int | None = None,
                      constrained: bool = True, callback: Callable[[int, int, torch.Tensor], None] | None = None,
                      max_new_tokens: int | None = None) -> list[Generated]:
        """``num_samples`` pieces on one theme, decoded as one batch (rows differ by their draws)."""
        ids, offsets = self.theme_ids(theme)
        B, dev = num_samples, self.device
        if self.is_theme_model:
            th = torch.tensor([ids] * B, device=dev)
            stepper = ThemeStepper(self.model, th, torch.tensor([offsets] * B, device=dev), autocast=self.autocast)
            prompt = [VOCAB.bos]
        else:
            stepper = BaselineStepper(self.model, autocast=self.autocast)
            prompt = [VOCAB.bos] + ids + [VOCAB.sep]
        grammars = [RemiGrammar(max_bars=bars, allow_themes=self.is_theme_model, meter=theme.bars[0],
                                theme_bars=len(theme.bars)) for _ in range(B)]
        # with the grammar on, this budget always reaches EOS (see grammar.max_tokens)
        budget = max_tokens(bars, theme.bars[0]) if constrained else bars * TOKENS_PER_BAR
        spec = DecodeSpec(max_new_tokens or budget, SamplingSpec(temperature, top_k, top_p),
                          eos_id=VOCAB.eos, pad_id=VOCAB.pad)
        out = generate(stepper, torch.tensor([prompt] * B, device=dev), spec, grammars if constrained else None,
                       generator, callback)
        return [self._to_song(row[len(prompt):], theme, tempo) for row in out.tolist()]

    def _to_song(self, tokens: list[int], theme: Song, tempo: int | None) -> Generated:
        from studio.tasks.music.grammar import track

        if VOCAB.eos in tokens:
            tokens = tokens[: tokens.index(VOCAB.eos) + 1]
        valid = track([VOCAB.bos] + tokens)[2] and VOCAB.eos in tokens
        events = VOCAB.decode([t for t in tokens if t not in (VOCAB.pad, VOCAB.eos)])
        song = events_to_song(events)
        if tempo is not None or not song.tempi:
            song.tempi = [tempo or (theme.tempi[0] if theme.tempi else 120)] * len(song.bars)
        return Generated(song, tokens, valid, self.name)
