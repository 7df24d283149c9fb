"""MIDI <-> ``Song`` <-> REMI events.

``Song`` is the grid-quantised middle form: bar lengths, a tempo per bar, notes in sixteenths on
two tracks (melody, accompaniment) and theme regions as bar ranges. Everything that reads MIDI
(corpus, user folders, theme files) goes through ``song_from_midi``; everything that writes goes
through ``song_to_midi``.

Melody-track rule (user MIDI): an explicit ``melody`` index wins; else the first non-drum
instrument whose name says melody/soprano/vocal/voice/lead/melodie/cantus; else the non-drum
instrument with the highest mean pitch among those holding at least 10% of the non-drum notes.
All other non-drum instruments merge into the accompaniment. Drums are dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import pretty_midi

from studio.tasks.music.vocab import (
    MAX_BAR,
    MAX_DURATION,
    PITCH_HI,
    PITCH_LO,
    TEMPI,
    TRACKS,
    VELOCITIES,
    nearest,
)

MELODY, ACCOMP = 0, 1
_MELODY_NAME = re.compile(r"melod|soprano|vocal|voice|lead|cantus", re.IGNORECASE)


@dataclass(frozen=True)
class Note:
    track: int  # MELODY or ACCOMP
    pitch: int
    start: int  # sixteenths from the start of the piece
    duration: int  # sixteenths
    velocity: int


@dataclass
class Song:
    bars: list[int]  # length of each bar in sixteenths
    tempi: list[int]  # tempo bin (bpm) at the start of each bar
    notes: list[Note]
    themes: list[tuple[int, int]] = field(default_factory=list)  # [bar_start, bar_end) regions

    @property
    def bar_starts(self) -> list[int]:
        starts, t = [], 0
        for n in self.bars:
            starts.append(t)
            t += n
        return starts

    @property
    def length(self) -> int:
        return sum(self.bars)

    def melody(self) -> list[Note]:
        return sorted((n for n in self.notes if n.track == MELODY), key=lambda n: (n.start, -n.pitch))

    def slice_bars(self, lo: int, hi: int, tracks: tuple[int, ...] = (MELODY, ACCOMP)) -> "Song":
        """Bars [lo, hi) as a song of their own (times shifted to 0, theme regions dropped)."""
        starts = self.bar_starts + [self.length]
        t0, t1 = starts[lo], starts[hi]
        notes = [replace(n, start=n.start - t0) for n in self.notes if t0 <= n.start < t1 and n.track in tracks]
        return Song(self.bars[lo:hi], self.tempi[lo:hi], notes)


class TokenizeError(ValueError):
    """A MIDI file that cannot become a song (no notes, only drums, unreadable)."""


# ---------------------------------------------------------------- MIDI -> Song


def load_midi(path: str | Path) -> pretty_midi.PrettyMIDI:
    try:
        return pretty_midi.PrettyMIDI(str(path))
    except Exception as exc:  # pretty_midi raises many kinds for corrupt files
        raise TokenizeError(f"{Path(path).name} is not a readable MIDI file ({type(exc).__name__}: {exc})") from None


def pick_melody(pm: pretty_midi.PrettyMIDI, melody: int | None = None) -> int:
    """Index into ``pm.instruments`` of the melody track (rule in the module docstring)."""
    candidates = [i for i, inst in enumerate(pm.instruments) if not inst.is_drum and inst.notes]
    if not candidates:
        raise TokenizeError("the MIDI file has no pitched notes (empty or drums only)")
    if melody is not None:
        if melody not in candidates:
            raise TokenizeError(f"melody track {melody} is missing, empty or a drum track")
        return melody
    for i in candidates:
        if _MELODY_NAME.search(pm.instruments[i].name or ""):
            return i
    total = sum(len(pm.instruments[i].notes) for i in candidates)
    big = [i for i in candidates if len(pm.instruments[i].notes) >= 0.1 * total]
    return max(big, key=lambda i: sum(n.pitch for n in pm.instruments[i].notes) / len(pm.instruments[i].notes))


def _bar_grid(pm: pretty_midi.PrettyMIDI, end16: int) -> list[int]:
    """Bar lengths in sixteenths from the time-signature changes, covering ``end16``."""
    tps = pm.resolution / 4
    changes = sorted(pm.time_signature_changes, key=lambda ts: ts.time) or [pretty_midi.TimeSignature(4, 4, 0.0)]
    bars: list[int] = []
    t = 0
    for k, ts in enumerate(changes):
        length = max(1, min(MAX_BAR, round(ts.numerator * 16 / ts.denominator)))
        nxt = round(pm.time_to_tick(changes[k + 1].time) / tps) if k + 1 < len(changes) else None
        while (nxt is None and t < end16) or (nxt is not None and t < nxt):
            bars.append(length)
            t += length
    return bars or [16]


def _tempo_bins(pm: pretty_midi.PrettyMIDI, bars: list[int]) -> list[int]:
    times, bpms = pm.get_tempo_changes()
    out, t16 = [], 0
    for n in bars:
        sec = pm.tick_to_time(int(t16 * pm.resolution / 4))
        k = max(0, int((times <= sec + 1e-9).sum()) - 1)
        out.append(nearest(TEMPI, float(bpms[k]) if len(bpms) else 120.0))
        t16 += n
    return out


def song_from_midi(pm_or_path, melody: int | None = None) -> Song:
    """Quantise a MIDI file to the 1/16 grid: melody track + merged accompaniment."""
    pm = pm_or_path if isinstance(pm_or_path, pretty_midi.PrettyMIDI) else load_midi(pm_or_path)
    mel = pick_melody(pm, melody)
    tps = pm.resolution / 4
    notes: list[Note] = []
    for i, inst in enumerate(pm.instruments):
        if inst.is_drum:
            continue
        track = MELODY if i == mel else ACCOMP
        for n in inst.notes:
            if not PITCH_LO <= n.pitch <= PITCH_HI:
                continue
            s = round(pm.time_to_tick(n.start) / tps)
            e = round(pm.time_to_tick(n.end) / tps)
            d = max(1, min(MAX_DURATION, e - s))
            notes.append(Note(track, n.pitch, s, d, nearest(VELOCITIES, n.velocity)))
    if not any(n.track == MELODY for n in notes):
        raise TokenizeError("the melody track has no notes in the piano range")
    notes = sorted(set(notes), key=lambda n: (n.start, n.track, -n.pitch, n.duration))
    bars = _bar_grid(pm, max(n.start for n in notes) + 1)
    return Song(bars, _tempo_bins(pm, bars), notes)


# ---------------------------------------------------------------- Song <-> events


def song_to_events(song: Song) -> list[str]:
    """REMI events of a song (no BOS/EOS): theme markers, bars, tempo, positions, notes."""
    starts = song.bar_starts
    by_bar: list[list[Note]] = [[] for _ in song.bars]
    bar_of = 0
    for n in sorted(song.notes, key=lambda n: (n.start, n.track, -n.pitch, n.duration)):
        while bar_of + 1 < len(starts) and n.start >= starts[bar_of + 1]:
            bar_of += 1
        by_bar[bar_of].append(n)
    opens = {a for a, _ in song.themes}
    closes = {b for _, b in song.themes}
    events: list[str] = []
    prev_tempo = None
    for i, length in enumerate(song.bars):
        if i in closes:
            events.append("Theme_End")
        if i in opens:
            events.append("Theme_Start")
        events.append(f"Bar_{length}")
        tempo = nearest(TEMPI, song.tempi[i])  # songs built by hand may carry any bpm
        if tempo != prev_tempo:
            events.append(f"Tempo_{tempo}")
            prev_tempo = tempo
        pos = None
        for n in by_bar[i]:
            p = n.start - starts[i]
            if p != pos:
                events.append(f"Position_{p}")
                pos = p
            events += [f"{TRACKS[n.track]}On_{n.pitch}", f"Duration_{n.duration}", f"Velocity_{n.velocity}"]
    if len(song.bars) in closes:
        events.append("Theme_End")
    return events


def events_to_song(events: list[str]) -> Song:
    """Inverse of ``song_to_events``; tolerant: malformed notes are skipped, not fatal."""
    bars: list[int] = []
    tempi: list[int] = []
    notes: list[Note] = []
    themes: list[tuple[int, int]] = []
    bar_start = -1
    pos = 0
    tempo = 120
    open_at = None
    pending: list[str] = []  # the note being assembled: [On, Duration, Velocity]
    for ev in events:
        kind, _, val = ev.rpartition("_") if ev[-1].isdigit() else (ev, "", "")
        if kind == "Bar":
            bar_start = sum(bars)
            bars.append(int(val))
            tempi.append(tempo)
            pos = 0
        elif kind == "Tempo":
            tempo = int(val)
            if tempi:
                tempi[-1] = tempo
        elif kind == "Position":
            pos = int(val)
        elif kind in ("MelOn", "AccOn"):
            pending = [ev]
        elif kind == "Duration" and len(pending) == 1:
            pending.append(ev)
        elif kind == "Velocity" and len(pending) == 2 and bars:
            track = TRACKS.index(pending[0].split("On_")[0])
            pitch = int(pending[0].rsplit("_", 1)[1])
            dur = int(pending[1].rsplit("_", 1)[1])
            notes.append(Note(track, pitch, bar_start + pos, dur, int(val)))
            pending = []
        elif ev == "Theme_Start":
            open_at = len(bars)
        elif ev == "Theme_End" and open_at is not None:
            if len(bars) > open_at:
                themes.append((open_at, len(bars)))
            open_at = None
    if open_at is not None and len(bars) > open_at:
        themes.append((open_at, len(bars)))
    return Song(bars, tempi, notes, themes)


# ---------------------------------------------------------------- Song -> MIDI


def _time_signature(length: int) -> tuple[int, int]:
    if length % 4 == 0:
        return length // 4, 4
    if length % 2 == 0:
        return length // 2, 8
    return length, 16


def song_to_midi(song: Song, mark_themes: bool = True) -> pretty_midi.PrettyMIDI:
    """A two-track MIDI file; theme occurrences marked by text events at their bar boundaries."""
    bpm = song.tempi[0] if song.tempi else 120
    sec16 = 60.0 / bpm / 4  # one tempo for the whole file: pretty_midi writes only an initial tempo
    pm = pretty_midi.PrettyMIDI(initial_tempo=float(bpm))
    starts = song.bar_starts
    prev = None
    for i, n in enumerate(song.bars):
        if n != prev:
            num, den = _time_signature(n)
            pm.time_signature_changes.append(pretty_midi.TimeSignature(num, den, starts[i] * sec16))
            prev = n
    names = ("Melody", "Accompaniment")
    insts = [pretty_midi.Instrument(program=0, name=names[t]) for t in (MELODY, ACCOMP)]
    for n in song.notes:
        insts[n.track].notes.append(
            pretty_midi.Note(velocity=n.velocity, pitch=n.pitch, start=n.start * sec16, end=(n.start + n.duration) * sec16)
        )
    pm.instruments = [inst for inst in insts if inst.notes]
    if mark_themes:
        ends = starts + [song.length]
        for k, (a, b) in enumerate(song.themes):
            pm.text_events.append(pretty_midi.Text(f"Theme_Start {k + 1}", ends[a] * sec16))
            pm.text_events.append(pretty_midi.Text(f"Theme_End {k + 1}", ends[b] * sec16))
    return pm


def seconds_per_sixteenth(song: Song) -> float:
    return 60.0 / (song.tempi[0] if song.tempi else 120) / 4
