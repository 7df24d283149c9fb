"""Training examples: token windows with theme labels, for both models.

Theme model: decoder input = a window of ``BOS events EOS`` (with theme markers), starting at a
bar, plus per-token gate and theme-aligned offset from the tracker run over the whole song (so a
window that opens inside an occurrence still knows it); encoder input = the melody of the first
occurrence. Baseline: ``BOS theme SEP`` + the same window without theme markers; only the song
part is scored. Random transposition (the paper's only augmentation) shifts every pitch token.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch
from torch.utils.data import Dataset

from studio.tasks.music.grammar import track
from studio.tasks.music.tokenizer import MELODY, Song, song_to_events
from studio.tasks.music.vocab import PITCH_HI, PITCH_LO, VOCAB, Vocab

IGNORE = -100
MAX_THEME_TOKENS = 160


def theme_events(song: Song, bar: int, bars: int = 2) -> list[str]:
    """Melody-only events of bars [bar, bar+bars) (no tempo): what the theme encoder reads."""
    part = song.slice_bars(bar, min(bar + bars, len(song.bars)), tracks=(MELODY,))
    return [e for e in song_to_events(part) if not e.startswith("Tempo_")]


def theme_inputs(events: list[str], vocab: Vocab = VOCAB) -> tuple[list[int], list[int]]:
    """Theme ids and their time offsets (as if the theme were one occurrence)."""
    ids = vocab.encode(events)
    _, offsets, _ = track([vocab.theme_start] + ids, vocab)
    return ids, offsets[1:]


@dataclass
class EncodedSong:
    ids: list[int]  # BOS ... EOS with theme markers
    gates: list[int]
    offsets: list[int]
    theme: list[int]
    theme_offsets: list[int]
    bar_index: list[int]  # token indices of Bar tokens (window starts)


def encode_song(song: Song, vocab: Vocab = VOCAB) -> EncodedSong | None:
    if not song.themes:
        return None
    ids = vocab.encode(["BOS"] + song_to_events(song) + ["EOS"])
    gates, offsets, _ = track(ids, vocab)
    theme, theme_offsets = theme_inputs(theme_events(song, song.themes[0][0], song.themes[0][1] - song.themes[0][0]), vocab)
    if len(theme) > MAX_THEME_TOKENS:
        return None
    starts = [0] + [i for i, t in enumerate(ids) if vocab.kind[t] in ("Bar", "Theme_Start") and vocab.kind[ids[i - 1]] != "Theme_Start"]
    return EncodedSong(ids, gates, offsets, theme, theme_offsets, starts)


def transpose_ids(ids: list[int], k: int, vocab: Vocab = VOCAB) -> list[int] | None:
    if k == 0:
        return ids
    out = []
    for t in ids:
        kind = vocab.kind[t]
        if kind in ("MelOn", "AccOn"):
            p = vocab.value[t] + k
            if not PITCH_LO <= p <= PITCH_HI:
                return None
            t = vocab.id(f"{kind}_{p}")
        out.append(t)
    return out


class WindowDataset(Dataset):
    """Fixed list of (song, window start, transposition) items: deterministic, so resumable."""

    def __init__(self, songs: list[EncodedSong], context: int, seed: int = 0, transpose: tuple[int, int] = (-5, 6),
                 copies: int = 2, baseline: bool = False, vocab: Vocab = VOCAB):
        self.songs, self.context, self.baseline, self.vocab = songs, context, baseline, vocab
        rng = random.Random(seed)
        self.items: list[tuple[int, int, int]] = []
        for si, s in enumerate(songs):
            starts, last = [], -context
            for b in s.bar_index:  # a new window every half context
                if b - last >= context // 2 or b == 0:
                    starts.append(b)
                    last = b
            for st in starts:
                if len(s.ids) - st < 16:
                    continue
                for _ in range(copies):
                    self.items.append((si, st, rng.randint(*transpose) if transpose else 0))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        si, st, k = self.items[i]
        s = self.songs[si]
        ids, theme = transpose_ids(s.ids, k, self.vocab), transpose_ids(s.theme, k, self.vocab)
        if ids is None or theme is None:
            ids, theme = s.ids, s.theme
        if self.baseline:
            return self._baseline_item(ids, theme, st)
        end = st + self.context + 1
        return {
            "ids": ids[st:end], "gates": s.gates[st:end], "offsets": s.offsets[st:end],
            "theme": theme, "theme_offsets": s.theme_offsets,
        }

    def _baseline_item(self, ids: list[int], theme: list[int], st: int) -> dict:
        v = self.vocab
        song = [t for t in ids[st:] if t not in (v.theme_start, v.theme_end)][: self.context + 1]
        prompt = [v.bos] + theme + [v.sep]
        return {"ids": prompt + song, "prompt_len": len(prompt)}


def collate_theme(items: list[dict], pad: int = 0) -> dict[str, torch.Tensor]:
    B = len(items)
    N = max(len(it["ids"]) for it in items) - 1
    M = max(len(it["theme"]) for it in items)
    out = {
        "tokens": torch.full((B, N), pad), "targets": torch.full((B, N), IGNORE),
        "gates": torch.zeros(B, N, dtype=torch.long), "offsets": torch.zeros(B, N, dtype=torch.long),
        "theme": torch.full((B, M), pad), "theme_offsets": torch.zeros(B, M, dtype=torch.long),
        "theme_mask": torch.zeros(B, M, dtype=torch.bool),
    }
    for b, it in enumerate(items):
        n, m = len(it["ids"]) - 1, len(it["theme"])
        out["tokens"][b, :n] = torch.tensor(it["ids"][:-1])
        out["targets"][b, :n] = torch.tensor(it["ids"][1:])
        out["gates"][b, :n] = torch.tensor(it["gates"][:-1])
        out["offsets"][b, :n] = torch.tensor(it["offsets"][:-1])
        out["theme"][b, :m] = torch.tensor(it["theme"])
        out["theme_offsets"][b, :m] = torch.tensor(it["theme_offsets"])
        out["theme_mask"][b, :m] = True
    return out


def collate_baseline(items: list[dict], pad: int = 0) -> dict[str, torch.Tensor]:
    B = len(items)
    N = max(len(it["ids"]) for it in items) - 1
    tokens, targets = torch.full((B, N), pad), torch.full((B, N), IGNORE)
    for b, it in enumerate(items):
        ids = torch.tensor(it["ids"])
        n = len(ids) - 1
        tokens[b, :n] = ids[:-1]
        tgt = ids[1:].clone()
        tgt[: it["prompt_len"] - 1] = IGNORE  # the theme prompt is given, not predicted
        targets[b, :n] = tgt
    return {"tokens": tokens, "targets": targets}
