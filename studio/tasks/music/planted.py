"""Planted-theme benchmark for theme retrieval: pieces with known theme occurrences.

A piece is built from 2-bar melody segments of many different real pieces (so nothing recurs by
accident), then one 2-bar theme from yet another piece is written over it at random,
non-overlapping bars; later occurrences are varied with the paper's augmentations half of the
time. Retrieval must return exactly those bars. Also: agreement with exact-repeat detection on
real pieces (same notes, or the same intervals and rhythm transposed).
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, replace

from studio.tasks.music.segments import SEGMENT_BARS, Segment, augment, melody_segments, scale_of
from studio.tasks.music.tokenizer import MELODY, Note, Song


@dataclass(frozen=True)
class PlantedPiece:
    song: Song
    occurrences: list[int]


def _pool_by_meter(songs: list[Song]) -> dict[int, list[Segment]]:
    pool: dict[int, list[Segment]] = defaultdict(list)
    for song in songs:
        if len(set(song.bars)) == 1:
            pool[song.bars[0]] += [s for s in melody_segments(song, hop=SEGMENT_BARS) if len(s.notes) >= 3]
    return pool


def make_planted(songs: list[Song], n: int, seed: int = 0, bars: int = 32, occurrences: tuple[int, int] = (3, 5),
                 vary: float = 0.5) -> list[PlantedPiece]:
    rng = random.Random(seed)
    pool = {m: segs for m, segs in _pool_by_meter(songs).items() if len(segs) >= bars}
    meters = sorted(pool)
    if not meters:
        raise ValueError(f"songs: no meter has the {bars} one-meter 2-bar segments a planted piece needs")
    out = []
    for _ in range(n):
        meter = rng.choice(meters)
        segs = pool[meter]
        chosen = rng.sample(segs, bars // SEGMENT_BARS + 1)
        theme, filler = chosen[0], chosen[1:]
        while len(theme.notes) < 4:
            theme = rng.choice(segs)
        k = rng.randint(*occurrences)
        starts = _random_starts(rng, bars, k)
        by_bar: dict[int, Segment] = {2 * i: s for i, s in enumerate(filler)}
        for b in starts:  # the theme overwrites whatever filler it covers
            for bb in (b - 1, b, b + 1):
                by_bar.pop(bb, None)
        scale = scale_of(theme.notes)
        for j, b in enumerate(starts):
            by_bar[b] = augment(theme, rng, scale) if j > 0 and rng.random() < vary else theme
        notes = [
            Note(MELODY, p, b * meter + o, max(1, min(d, SEGMENT_BARS * meter - o)), 80)
            for b, seg in by_bar.items() for p, o, d in seg.notes if b + SEGMENT_BARS <= bars
        ]
        out.append(PlantedPiece(Song([meter] * bars, [120] * bars, sorted(notes, key=lambda n: n.start)), starts))
    return out


def _random_starts(rng: random.Random, bars: int, k: int) -> list[int]:
    while True:
        starts = sorted(rng.sample(range(bars - SEGMENT_BARS + 1), k))
        if all(b - a >= SEGMENT_BARS for a, b in zip(starts, starts[1:])):
            return starts


def f1(pred: list[int], truth: list[int]) -> float:
    if not pred and not truth:
        return 1.0
    tp = len(set(pred) & set(truth))
    if tp == 0:
        return 0.0
    p, r = tp / len(pred), tp / len(truth)
    return 2 * p * r / (p + r)


# ---------------------------------------------------------------- exact repeats on real pieces


def exact_repeats(song: Song) -> list[int]:
    """First bars of the most repeated 2-bar melody (exact or transposed), non-overlapping."""
    groups: dict[tuple, list[int]] = defaultdict(list)
    for s in melody_segments(song):
        if len(s.notes) < 3:
            continue
        p0 = s.notes[0][0]
        key = tuple((p - p0, o, d) for p, o, d in s.notes)  # transposition-invariant
        groups[key].append(s.bar)
    best: list[int] = []
    for bars in groups.values():
        kept: list[int] = []
        for b in sorted(bars):
            if not kept or b - kept[-1] >= SEGMENT_BARS:
                kept.append(b)
        if len(kept) > len(best):
            best = kept
    return best if len(best) >= 2 else []


def with_themes(song: Song, regions: list[tuple[int, int]]) -> Song:
    return replace(song, themes=list(regions))
