"""REMI-like event vocabulary on a 1/16-note grid (Theme Transformer §3, Huang & Yang's REMI).

A bar is ``Bar_<length in sixteenths>`` (so every bar says its own meter and a window may start at
any bar), optionally ``Tempo_<bpm>``, then per onset ``Position_<p>`` followed by notes: melody
notes ``MelOn_<pitch>`` and accompaniment notes ``AccOn_<pitch>``, each followed by
``Duration_<sixteenths>`` and ``Velocity_<v>``. ``Theme_Start`` / ``Theme_End`` enclose the bars
of a theme occurrence and sit on bar boundaries.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

SPECIALS = ("PAD", "BOS", "EOS", "SEP", "Theme_Start", "Theme_End")
MAX_BAR = 32  # sixteenths: 8/4 is the longest bar we encode
PITCH_LO, PITCH_HI = 21, 108  # piano range
MAX_DURATION = 64  # sixteenths (a whole note = 16); longer notes are clipped
TEMPI = tuple(range(40, 232, 12))  # bpm bins
VELOCITIES = (20, 36, 52, 64, 80, 96, 112, 127)
TRACKS = ("Mel", "Acc")  # melody, accompaniment


@dataclass(frozen=True)
class Vocab:
    """Token <-> id maps plus the id ranges the grammar and the models need."""

    @cached_property
    def tokens(self) -> tuple[str, ...]:
        toks = list(SPECIALS)
        toks += [f"Bar_{n}" for n in range(1, MAX_BAR + 1)]
        toks += [f"Position_{p}" for p in range(MAX_BAR)]
        toks += [f"Tempo_{t}" for t in TEMPI]
        for track in TRACKS:
            toks += [f"{track}On_{p}" for p in range(PITCH_LO, PITCH_HI + 1)]
        toks += [f"Duration_{d}" for d in range(1, MAX_DURATION + 1)]
        toks += [f"Velocity_{v}" for v in VELOCITIES]
        return tuple(toks)

    @cached_property
    def index(self) -> dict[str, int]:
        return {t: i for i, t in enumerate(self.tokens)}

    def __len__(self) -> int:
        return len(self.tokens)

    def id(self, token: str) -> int:
        return self.index[token]

    def encode(self, events: list[str]) -> list[int]:
        return [self.index[e] for e in events]

    def decode(self, ids) -> list[str]:
        return [self.tokens[int(i)] for i in ids]

    def ids_with_prefix(self, prefix: str) -> list[int]:
        return [i for i, t in enumerate(self.tokens) if t.startswith(prefix)]

    @cached_property
    def kind(self) -> tuple[str, ...]:
        """Event kind of each id ("Bar", "Position", "MelOn", "Duration", "Theme_Start", ...)."""
        return tuple(t if t in SPECIALS else t.rsplit("_", 1)[0] for t in self.tokens)

    @cached_property
    def value(self) -> tuple[int, ...]:
        """Numeric value of each id (bar length, position, pitch, ...); -1 for specials."""
        return tuple(-1 if t in SPECIALS else int(t.rsplit("_", 1)[1]) for t in self.tokens)

    @property
    def pad(self) -> int:
        return self.index["PAD"]

    @property
    def bos(self) -> int:
        return self.index["BOS"]

    @property
    def eos(self) -> int:
        return self.index["EOS"]

    @property
    def sep(self) -> int:
        return self.index["SEP"]

    @property
    def theme_start(self) -> int:
        return self.index["Theme_Start"]

    @property
    def theme_end(self) -> int:
        return self.index["Theme_End"]


VOCAB = Vocab()


def nearest(values: tuple[int, ...], x: float) -> int:
    return min(values, key=lambda v: abs(v - x))
