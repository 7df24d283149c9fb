"""REMI tokenizer round trip, melody rule, grammar tracker."""

import pretty_midi
import pytest

from studio.tasks.music.grammar import RemiGrammar, track
from studio.tasks.music.tokenizer import (
    TokenizeError,
    events_to_song,
    pick_melody,
    song_from_midi,
    song_to_events,
    song_to_midi,
)
from studio.tasks.music.vocab import VOCAB


def _midi(tmp_path, bpm=100.0, meter_change=True):
    """Two tracks on the 1/16 grid, a 4/4 -> 3/4 meter change, chords, long and short notes."""
    pm = pretty_midi.PrettyMIDI(initial_tempo=bpm)
    s16 = 60 / bpm / 4
    pm.time_signature_changes = [pretty_midi.TimeSignature(4, 4, 0)]
    if meter_change:
        pm.time_signature_changes.append(pretty_midi.TimeSignature(3, 4, 32 * s16))
    mel = pretty_midi.Instrument(0, name="Lead")
    acc = pretty_midi.Instrument(33, name="Bass")
    drums = pretty_midi.Instrument(0, is_drum=True)
    grid = [(72, 0, 4), (74, 4, 2), (76, 6, 2), (77, 8, 8), (79, 16, 3), (81, 19, 13), (72, 32, 12), (71, 44, 1), (72, 45, 3)]
    for p, s, d in grid:
        mel.notes.append(pretty_midi.Note(100, p, s * s16, (s + d) * s16))
    for p, s, d in [(48, 0, 16), (52, 0, 16), (55, 16, 16), (43, 32, 12), (47, 44, 4)]:
        acc.notes.append(pretty_midi.Note(64, p, s * s16, (s + d) * s16))
    drums.notes.append(pretty_midi.Note(90, 36, 0, s16))
    pm.instruments = [acc, mel, drums]
    path = tmp_path / "in.mid"
    pm.write(str(path))
    return path


def _notes(pm):
    return sorted((i.name, n.pitch, round(n.start, 4), round(n.end, 4)) for i in pm.instruments for n in i.notes)


def test_round_trip_midi_events_midi_keeps_notes(tmp_path):
    song = song_from_midi(_midi(tmp_path))
    assert song.bars == [16, 16, 12, 12]
    events = song_to_events(song)
    assert events[0] == "Bar_16" and "Bar_12" in events
    back = events_to_song(events)
    assert back.notes == song.notes and back.bars == song.bars
    pm = song_to_midi(back)
    out = tmp_path / "out.mid"
    pm.write(str(out))
    again = song_from_midi(out)
    assert again.notes == song.notes  # MIDI -> events -> MIDI -> events: nothing lost
    assert [(ts.numerator, ts.denominator) for ts in pm.time_signature_changes] == [(4, 4), (3, 4)]


def test_melody_rule_prefers_named_track_then_highest(tmp_path):
    pm = pretty_midi.PrettyMIDI(str(_midi(tmp_path)))
    assert pm.instruments[pick_melody(pm)].name == "Lead"
    pm.instruments[1].name = "Piano"
    assert pm.instruments[pick_melody(pm)].name == "Piano"  # highest mean pitch
    assert pick_melody(pm, melody=0) == 0


def test_drum_only_and_empty_midi_rejected(tmp_path):
    pm = pretty_midi.PrettyMIDI()
    drums = pretty_midi.Instrument(0, is_drum=True)
    drums.notes.append(pretty_midi.Note(90, 36, 0, 0.1))
    pm.instruments = [drums]
    with pytest.raises(TokenizeError, match="drums only"):
        song_from_midi(pm)
    bad = tmp_path / "bad.mid"
    bad.write_text("not a midi file")
    with pytest.raises(TokenizeError, match="not a readable MIDI"):
        song_from_midi(bad)


def test_theme_markers_round_trip_and_track_labels(tmp_path):
    song = song_from_midi(_midi(tmp_path, meter_change=False))
    song.themes = [(0, 2)]
    ids = VOCAB.encode(["BOS"] + song_to_events(song) + ["EOS"])
    gates, offsets, valid = track(ids)
    assert valid
    assert events_to_song(VOCAB.decode(ids)).themes == [(0, 2)]
    start, end = ids.index(VOCAB.theme_start), ids.index(VOCAB.theme_end)
    assert all(gates[start:end]) and not any(gates[end:])
    # second bar of the occurrence: offsets measured from the occurrence start (16 sixteenths per bar)
    bar2 = [i for i in range(start, end) if VOCAB.kind[ids[i]] == "Bar"][1]
    assert offsets[bar2] == 16 and offsets[bar2 + 2] == 16  # Bar_16, then Position_0's note


def test_grammar_rejects_out_of_order_events():
    ids = VOCAB.encode(["BOS", "Bar_16", "Position_4", "MelOn_60", "Duration_2", "Velocity_64", "Position_2"])
    assert not track(ids)[2]
    g = RemiGrammar(max_bars=2)
    g.advance_many(VOCAB.encode(["BOS", "Bar_16", "Position_4"]))
    allowed = {VOCAB.kind[i] for i in g.allowed(len(VOCAB)).nonzero().flatten().tolist()}
    assert allowed == {"MelOn", "AccOn"}
    g.advance_many(VOCAB.encode(["MelOn_60", "Duration_2", "Velocity_64"]))
    mask = g.allowed(len(VOCAB))
    assert not mask[VOCAB.id("Position_4")] and mask[VOCAB.id("Position_5")]
    assert not mask[VOCAB.id("Bar_12")] and mask[VOCAB.id("Bar_16")]  # one meter per piece
    assert not mask[VOCAB.eos]  # exactly max_bars bars
    g.advance_many(VOCAB.encode(["Bar_16"]))
    mask = g.allowed(len(VOCAB))
    assert mask[VOCAB.eos] and not mask[VOCAB.id("Bar_16")] and not mask[VOCAB.theme_start]  # no room for a theme


def test_training_windows_carry_theme_labels_and_mask_the_prompt(tmp_path):
    from studio.tasks.music.windows import IGNORE, WindowDataset, collate_baseline, collate_theme, encode_song

    song = song_from_midi(_midi(tmp_path, meter_change=False))
    song.themes = [(1, 3)]
    enc = encode_song(song)
    assert enc is not None and VOCAB.decode(enc.theme)[0] == "Bar_16"
    assert all(VOCAB.kind[t] in ("Bar", "Position", "MelOn", "Duration", "Velocity") for t in enc.theme)
    ds = WindowDataset([enc], context=16, transpose=(2, 2))
    batch = collate_theme([ds[i] for i in range(len(ds))])
    assert batch["tokens"].shape == batch["gates"].shape == batch["targets"].shape
    assert (batch["tokens"][:, 1:] == batch["targets"][:, :-1]).logical_or(batch["targets"][:, :-1] == IGNORE).all()
    assert batch["gates"].sum() > 0  # some windows lie inside the theme region
    first = ds[0]["ids"]
    assert VOCAB.decode(first)[4].startswith("MelOn_") and VOCAB.value[first[4]] == 72 + 2  # transposed up 2
    base = WindowDataset([enc], context=16, transpose=None, baseline=True)
    b = collate_baseline([base[0]])
    n_prompt = base[0]["prompt_len"]
    assert (b["targets"][0, : n_prompt - 1] == IGNORE).all() and b["targets"][0, n_prompt - 1] != IGNORE
    assert VOCAB.theme_start not in base[0]["ids"]


def test_grammar_makes_occurrences_as_long_as_the_theme():
    g = RemiGrammar(max_bars=8, meter=16, theme_bars=2)
    g.advance_many(VOCAB.encode(["BOS", "Theme_Start", "Bar_16", "Position_0", "MelOn_60", "Duration_2", "Velocity_64"]))
    mask = g.allowed(len(VOCAB))
    assert not mask[VOCAB.theme_end] and mask[VOCAB.id("Bar_16")]  # one bar in: the theme goes on
    g.advance_many(VOCAB.encode(["Bar_16", "Position_0", "MelOn_62", "Duration_2", "Velocity_64"]))
    mask = g.allowed(len(VOCAB))
    assert mask[VOCAB.theme_end] and not mask[VOCAB.id("Bar_16")]  # two bars in: it must close


def test_grammar_caps_notes_per_position_so_pieces_finish():
    from studio.tasks.music.grammar import MAX_NOTES_PER_POSITION

    g = RemiGrammar(max_bars=1, meter=16)
    g.advance_many(VOCAB.encode(["BOS", "Bar_16", "Position_0"]))
    for _ in range(MAX_NOTES_PER_POSITION):
        g.advance_many(VOCAB.encode(["AccOn_60", "Duration_1", "Velocity_64"]))
    mask = g.allowed(len(VOCAB))
    assert not mask[VOCAB.id("AccOn_61")] and mask[VOCAB.id("Position_1")] and mask[VOCAB.eos]
