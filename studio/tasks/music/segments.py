"""2-bar melody segments and the paper's contrastive augmentations.

A segment is the melody of two consecutive bars as ``(pitch, onset, duration)`` triples in
sixteenths from the segment start. Augmentations (Theme Transformer §4.1): pitch shift on the
scale (diatonic transposition), a change of the last note's duration, and note split / merge.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

from studio.tasks.music.tokenizer import MELODY, Song

SEGMENT_BARS = 2
MAX_NOTES = 48


@dataclass(frozen=True)
class Segment:
    bar: int  # index of the first bar in the song
    length: int  # sixteenths
    notes: tuple[tuple[int, int, int], ...]  # (pitch, onset, duration)


def melody_segments(song: Song, hop: int = 1, bars: int = SEGMENT_BARS) -> list[Segment]:
    """Every ``bars``-bar window of the melody (start every ``hop`` bars) that holds a note."""
    starts = song.bar_starts + [song.length]
    mel = [n for n in song.notes if n.track == MELODY]
    out = []
    for b in range(0, len(song.bars) - bars + 1, hop):
        t0, t1 = starts[b], starts[b + bars]
        notes = sorted((n.pitch, n.start - t0, min(n.duration, t1 - n.start)) for n in mel if t0 <= n.start < t1)
        notes = _skyline(notes)[:MAX_NOTES]
        if notes:
            out.append(Segment(b, t1 - t0, tuple(notes)))
    return out


def _skyline(notes: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """One note per onset (the highest): melodies with double stops become monophonic."""
    best: dict[int, tuple[int, int, int]] = {}
    for p, o, d in notes:
        if o not in best or p > best[o][0]:
            best[o] = (p, o, d)
    return [best[o] for o in sorted(best)]


# ---------------------------------------------------------------- augmentations


def scale_of(notes) -> list[int]:
    """The 7 most used pitch classes, sorted: the scale diatonic shifts move along."""
    counts = Counter(p % 12 for p, _, _ in notes)
    pcs = [pc for pc, _ in counts.most_common(7)]
    major = [0, 2, 4, 5, 7, 9, 11]
    if len(pcs) < 7:  # too few notes to know the scale: complete with the major scale on the tonic guess
        tonic = pcs[0] if pcs else 0
        pcs += [(tonic + s) % 12 for s in major if (tonic + s) % 12 not in pcs][: 7 - len(pcs)]
    return sorted(pcs)


def shift_on_scale(notes, steps: int, scale: list[int] | None = None):
    """Move every note ``steps`` scale degrees; off-scale notes move by the nearest degree's amount."""
    scale = scale or scale_of(notes)
    out = []
    for p, o, d in notes:
        pc = p % 12
        k = min(range(7), key=lambda i: min((pc - scale[i]) % 12, (scale[i] - pc) % 12))
        octave, j = divmod(k + steps, 7)
        delta = scale[j] + 12 * octave - scale[k]
        out.append((min(108, max(21, p + delta)), o, d))
    return tuple(out)


def change_last_duration(notes, rng: random.Random, length: int):
    if not notes:
        return tuple(notes)
    p, o, d = notes[-1]
    d2 = max(1, min(length - o, rng.choice([d // 2, d * 2, d + 2, d - 2]) or 1))
    return tuple(notes[:-1]) + ((p, o, d2),)


def split_or_merge(notes, rng: random.Random):
    notes = list(notes)
    splittable = [i for i, (_, _, d) in enumerate(notes) if d >= 2]
    if (rng.random() < 0.5 or len(notes) < 2) and splittable:
        i = rng.choice(splittable)
        p, o, d = notes[i]
        h = d // 2
        notes[i : i + 1] = [(p, o, h), (p, o + h, d - h)]
    elif len(notes) >= 2:
        i = rng.randrange(len(notes) - 1)
        (p, o, _), (_, o2, d2) = notes[i], notes[i + 1]
        notes[i : i + 2] = [(p, o, o2 + d2 - o)]
    return tuple(notes[:MAX_NOTES])


def augment(seg: Segment, rng: random.Random, scale: list[int] | None = None) -> Segment:
    """A positive view: each augmentation applied with probability 1/2 (at least one applied)."""
    notes = seg.notes
    ops = [rng.random() < 0.5 for _ in range(3)]
    if not any(ops):
        ops[rng.randrange(3)] = True
    if ops[0]:
        notes = shift_on_scale(notes, rng.choice([-2, -1, 1, 2]), scale)
    if ops[1]:
        notes = change_last_duration(notes, rng, seg.length)
    if ops[2]:
        notes = split_or_merge(notes, rng)
    return Segment(seg.bar, seg.length, tuple(notes))
