"""REMI grammar: an online tracker of bars, positions and theme regions, and the decoding
constraint built on it.

``RemiTracker`` is fed one token at a time and knows, for the token just read, whether it lies in
a theme region (the gate ``g`` of the gated parallel attention) and its theme-aligned time (the
offset in sixteenths from the start of the current theme occurrence). The same tracker labels the
training data, so the labels seen in training and those tracked while generating agree.

``RemiGrammar`` turns the tracker into a ``Constraint``: events in order (Bar [Tempo]
(Position note*)*), positions strictly increasing inside the bar and < its length, every note
On -> Duration -> Velocity, one meter for the whole piece, theme markers paired and only on bar
boundaries, a theme region as long as the theme (at least one bar when its length is not given),
and an exact number of bars when asked.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from studio.autoregressive import Constraint
from studio.tasks.music.vocab import VOCAB, Vocab

MAX_THEME_OFFSET = 255  # sixteenths; later offsets share the last code
MAX_NOTES_PER_POSITION = 8  # chorales need 4-6; a cap makes every piece finish in bounded tokens


def max_tokens(bars: int, bar_len: int) -> int:
    """Most tokens a grammatical piece of ``bars`` bars can take (plus EOS): decoding within this
    budget always reaches EOS, because every position holds at most MAX_NOTES_PER_POSITION notes."""
    per_bar = 2 + 2 + bar_len * (1 + 3 * MAX_NOTES_PER_POSITION)  # markers, Bar, Tempo, positions
    return bars * per_bar + 1


@dataclass
class RemiTracker:
    vocab: Vocab = VOCAB
    last: str = "BOS"  # kind of the last token
    in_theme: bool = False
    theme_start_time: int = 0
    bars_in_theme: int = 0
    bars: int = 0
    bar_len: int = 0
    first_bar_len: int = 0
    bar_start: int = 0  # sixteenths
    pos: int = -1  # last position in the current bar (-1 = none yet)
    notes_here: int = 0  # notes at the current position
    ended: bool = False
    valid: bool = True  # false once a token broke the grammar
    themes: int = 0

    def step(self, token: int) -> tuple[bool, int]:
        """Read a token; return (gate, theme offset) for it."""
        kind, val = self.vocab.kind[token], self.vocab.value[token]
        if kind in ("BOS", "SEP"):  # a (new) song starts: the baseline's SEP ends its theme prompt
            self.__init__(self.vocab, valid=self.valid)
            return False, 0
        if not self.allows(token):
            self.valid = False
        gate = self.in_theme
        if kind == "Theme_Start":
            self.in_theme, gate = True, True
            self.theme_start_time = self.bar_start + self.bar_len
            self.bars_in_theme = 0
            self.themes += 1
        elif kind == "Theme_End":
            self.in_theme, gate = False, False
        elif kind == "Bar":
            self.bar_start += self.bar_len
            self.bar_len = val
            self.first_bar_len = self.first_bar_len or val
            self.bars += 1
            self.pos = -1
            self.bars_in_theme += self.in_theme
        elif kind == "Position":
            self.pos = val
            self.notes_here = 0
        elif kind in ("MelOn", "AccOn"):
            self.notes_here += 1
        elif kind == "EOS":
            self.ended = True
        if kind not in ("PAD",):
            self.last = kind
        offset = self.bar_start + max(self.pos, 0) - self.theme_start_time if gate else 0
        return gate, max(0, min(MAX_THEME_OFFSET, offset))

    # ------------------------------------------------------------------ grammar

    def allowed_kinds(self, max_bars: int | None = None, theme_bars: int | None = None) -> set[str]:
        if self.ended:
            return {"PAD", "EOS"}
        last = self.last
        if last == "BOS":
            return {"Bar", "Theme_Start"}
        if last == "Theme_Start":
            return {"Bar"}
        if last == "Position":
            return {"MelOn", "AccOn"}
        if last in ("MelOn", "AccOn"):
            return {"Duration"}
        if last == "Duration":
            return {"Velocity"}
        kinds: set[str] = set()
        if last == "Velocity" and self.notes_here < MAX_NOTES_PER_POSITION:
            kinds |= {"MelOn", "AccOn"}
        if last in ("Bar", "Tempo", "Velocity"):
            kinds.add("Position")
        if last == "Bar":
            kinds.add("Tempo")
        # from here on we stand on a bar boundary (the current bar may still take notes)
        full = max_bars is not None and self.bars >= max_bars
        span = theme_bars or 1  # an occurrence lasts as many bars as the theme (when known)
        theme_done = self.in_theme and self.bars_in_theme >= span
        if not full and not (theme_bars and theme_done):
            kinds.add("Bar")
        if theme_done:
            kinds.add("Theme_End")
        room = max_bars is None or self.bars + (theme_bars or 2) <= max_bars  # a whole occurrence must fit
        if not self.in_theme and room:
            kinds.add("Theme_Start")
        if not self.in_theme and (max_bars is None or full):
            kinds.add("EOS")
        return kinds

    def allows(self, token: int, max_bars: int | None = None) -> bool:
        kind, val = self.vocab.kind[token], self.vocab.value[token]
        if kind not in self.allowed_kinds(max_bars):
            return False
        if kind == "Position":
            return self.pos < val < self.bar_len
        if kind == "Bar" and self.first_bar_len:
            return val == self.first_bar_len
        return True


def track(tokens: list[int], vocab: Vocab = VOCAB) -> tuple[list[int], list[int], bool]:
    """Gates, theme offsets and grammar validity of a whole token sequence."""
    t = RemiTracker(vocab)
    gates, offsets = [], []
    for tok in tokens:
        g, o = t.step(tok)
        gates.append(int(g))
        offsets.append(o)
    return gates, offsets, t.valid


class RemiGrammar(Constraint):
    """Decoding constraint over REMI events; ``max_bars`` forces exactly that many bars."""

    def __init__(self, vocab: Vocab = VOCAB, max_bars: int | None = None, allow_themes: bool = True,
                 meter: int | None = None, theme_bars: int | None = None):
        self.vocab = vocab
        self.tracker = RemiTracker(vocab)
        self.meter = meter  # bar length in sixteenths every bar must have (the theme's)
        self.theme_bars = theme_bars  # every occurrence spans exactly the theme's bars
        self.max_bars = max_bars
        self.allow_themes = allow_themes
        self._by_kind: dict[str, torch.Tensor] = {}
        for k in set(vocab.kind):
            self._by_kind[k] = torch.tensor([i for i, kk in enumerate(vocab.kind) if kk == k])
        self._values = torch.tensor(vocab.value)

    def allowed(self, vocab_size: int) -> torch.Tensor:
        t = self.tracker
        kinds = t.allowed_kinds(self.max_bars, self.theme_bars)
        if not self.allow_themes:
            kinds -= {"Theme_Start"}
        mask = torch.zeros(vocab_size, dtype=torch.bool)
        for k in kinds:
            mask[self._by_kind[k]] = True
        if "Position" in kinds:
            ids = self._by_kind["Position"]
            vals = self._values[ids]
            mask[ids] = (vals > t.pos) & (vals < t.bar_len)
        if "Bar" in kinds and (t.first_bar_len or self.meter):
            ids = self._by_kind["Bar"]
            mask[ids] = self._values[ids] == (self.meter or t.first_bar_len)
        return mask

    def advance(self, token: int) -> None:
        self.tracker.step(token)
        if self.vocab.kind[token] in ("BOS", "SEP"):
            self.tracker.valid = True  # a prompt before SEP (the baseline's theme) is not judged

    @property
    def bars(self) -> int:
        return self.tracker.bars
