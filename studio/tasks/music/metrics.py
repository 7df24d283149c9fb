"""Music statistics: theme recurrence (retrieval-embedding distance and exact/transposed matches),
pitch-class entropy, grooving similarity, grammar validity."""

from __future__ import annotations

import itertools
import math
from collections import Counter

import numpy as np

from studio.tasks.music.segments import SEGMENT_BARS, Segment, melody_segments
from studio.tasks.music.themes import MelodyEncoder, segment_distance
from studio.tasks.music.tokenizer import Song

RECUR_MIN = 3  # the goal: the theme recurs at least this many times in a 32-bar piece


def theme_segment(theme: Song) -> Segment | None:
    segs = melody_segments(theme, hop=SEGMENT_BARS, bars=min(SEGMENT_BARS, len(theme.bars)))
    return segs[0] if segs else None


def recurrences(song: Song, theme: Song, encoder: MelodyEncoder, eps: float | None = None) -> dict:
    """Non-overlapping 2-bar melody segments within ``eps`` of the theme (retrieval embedding),
    and how many of them match it exactly or transposed."""
    eps = encoder.config.eps if eps is None else eps
    ref = theme_segment(theme)
    segs = [s for s in melody_segments(song) if len(s.notes) >= 2]
    if ref is None or not segs:
        return {"count": 0, "bars": [], "exact": 0}
    dist = segment_distance(encoder, segs, [ref])[:, 0]
    close = sorted((d, s.bar) for d, s in zip(dist, segs) if d <= eps)
    kept: list[int] = []
    for _, b in close:
        if all(abs(b - k) >= SEGMENT_BARS for k in kept):
            kept.append(b)
    key = _shape(ref)
    exact = sum(1 for s in segs if s.bar in kept and _shape(s) == key)
    return {"count": len(kept), "bars": sorted(kept), "exact": exact}


def _shape(seg: Segment) -> tuple:
    p0 = seg.notes[0][0]
    return tuple((p - p0, o, d) for p, o, d in seg.notes)


def pitch_class_entropy(song: Song) -> float:
    """Shannon entropy (bits) of the pitch-class histogram, duration-weighted, all tracks."""
    h = Counter()
    for n in song.notes:
        h[n.pitch % 12] += n.duration
    total = sum(h.values())
    return -sum(c / total * math.log2(c / total) for c in h.values() if c) if total else 0.0


def grooving_similarity(song: Song) -> float:
    """Mean over pairs of bars of 1 - |onset patterns XOR| / bar length (Wu & Yang 2020)."""
    starts = song.bar_starts
    pats = []
    for i, n in enumerate(song.bars):
        v = np.zeros(n, bool)
        for note in song.notes:
            if starts[i] <= note.start < starts[i] + n:
                v[note.start - starts[i]] = True
        pats.append(v)
    pairs = [(a, b) for a, b in itertools.combinations(pats, 2) if len(a) == len(b)]
    if not pairs:
        return 0.0
    return float(np.mean([1 - np.logical_xor(a, b).sum() / len(a) for a, b in pairs]))


def summary(values: list[float]) -> dict:
    return {"mean": float(np.mean(values)) if values else float("nan"), "n": len(values)}
