"""Theme retrieval: augmentations, planted themes, exact repeats, contrastive loss."""

import random

import pytest
import torch

from studio.paths import model_path
from studio.tasks.music import planted as P
from studio.tasks.music.segments import Segment, augment, shift_on_scale, split_or_merge
from studio.tasks.music.themes import nt_xent
from studio.tasks.music.tokenizer import MELODY, Note, Song

SHIPPED = (model_path("music-theme") / "retriever" / "config.json").exists()


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _random_songs(n=30, bars=16, seed=0):
    """Procedural tunes in C major (no corpus needed): random rhythms on the scale."""
    rng = random.Random(seed)
    scale = [60, 62, 64, 65, 67, 69, 71, 72, 74, 76]
    songs = []
    for _ in range(n):
        notes, t = [], 0
        while t < bars * 16:
            d = rng.choice([2, 2, 4, 4, 1, 8, 3])
            d = min(d, bars * 16 - t)
            notes.append(Note(MELODY, rng.choice(scale), t, d, 80))
            t += d
        songs.append(Song([16] * bars, [120] * bars, notes))
    return songs


def test_augmentations_keep_rhythm_or_scale():
    seg = Segment(0, 32, ((60, 0, 4), (64, 4, 4), (67, 8, 8), (65, 16, 16)))
    up = shift_on_scale(seg.notes, 1, [0, 2, 4, 5, 7, 9, 11])
    assert [p for p, _, _ in up] == [62, 65, 69, 67]  # C E G F -> D F A G: diatonic, not chromatic
    rng = random.Random(0)
    sm = split_or_merge(seg.notes, rng)
    assert sum(d for _, _, d in sm) == sum(d for _, _, d in seg.notes) and len(sm) != len(seg.notes)
    assert augment(seg, rng).notes != seg.notes


def test_planted_pieces_and_f1():
    pieces = P.make_planted(_random_songs(), 5, seed=1)
    for pc in pieces:
        assert len(pc.song.bars) == 32 and 3 <= len(pc.occurrences) <= 5
        assert all(b - a >= 2 for a, b in zip(pc.occurrences, pc.occurrences[1:]))
    assert P.f1([0, 4], [0, 4]) == 1.0 and P.f1([0], [4]) == 0.0 and abs(P.f1([0, 8], [0, 4]) - 0.5) < 1e-9


def test_exact_repeats_find_a_transposed_repeat():
    song = _random_songs(1, bars=12, seed=5)[0]
    seg = [n for n in song.notes if n.start < 32]
    copy = [Note(MELODY, n.pitch + 5, n.start + 6 * 16, n.duration, 80) for n in seg]
    notes = [n for n in song.notes if not 96 <= n.start < 128] + copy
    assert P.exact_repeats(Song(song.bars, song.tempi, sorted(notes, key=lambda n: n.start)))[:2] == [0, 6]


def test_nt_xent_prefers_matching_pairs():
    z = torch.nn.functional.normalize(torch.randn(8, 16), dim=-1)
    assert nt_xent(z, z) < nt_xent(z, z.roll(1, 0))


@pytest.mark.skipif(not SHIPPED, reason="models/music-theme/retriever not trained yet (scripts/train_music.py)")
def test_shipped_retriever_recovers_planted_themes():
    from studio.core.checkpoint import load_model
    from studio.tasks.music.themes import MelodyEncoder, find_theme

    enc = load_model(MelodyEncoder, model_path("music-theme") / "retriever")
    pieces = P.make_planted(_random_songs(40), 12, seed=2)
    f1 = [P.f1((find_theme(pc.song, enc) or P.PlantedPiece(None, [])).occurrences, pc.occurrences) for pc in pieces]
    assert sum(f1) / len(f1) >= 0.7, f1
