"""Piano roll (theme occurrences marked) and audio for a song."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from studio.tasks.music.tokenizer import MELODY, Song, song_to_midi

SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
COLORS = {MELODY: (200, 40, 40), 1: (40, 80, 190)}  # melody red, accompaniment blue
THEME_BG = (255, 236, 170)  # theme occurrences: pale yellow columns


def piano_roll(song: Song, regions: list[tuple[int, int]] | None = None, px_per_16th: int = 4, px_per_pitch: int = 4) -> np.ndarray:
    """(H, W, 3) uint8: pitch up, time right; bar lines grey, theme regions shaded."""
    pitches = [n.pitch for n in song.notes] or [60]
    lo, hi = min(pitches) - 2, max(pitches) + 2
    H, W = (hi - lo + 1) * px_per_pitch, max(song.length, 1) * px_per_16th
    img = np.full((H, W, 3), 255, np.uint8)
    starts = song.bar_starts + [song.length]
    for a, b in regions if regions is not None else song.themes:
        img[:, starts[a] * px_per_16th : starts[min(b, len(song.bars))] * px_per_16th] = THEME_BG
    for s in starts:
        img[:, min(s * px_per_16th, W - 1)] = (190, 190, 190)
    for n in sorted(song.notes, key=lambda n: -n.track):  # melody drawn last, on top
        y = (hi - n.pitch) * px_per_pitch
        x0, x1 = n.start * px_per_16th, (n.start + n.duration) * px_per_16th
        img[y + 1 : y + px_per_pitch, x0 : max(x0 + 1, x1 - 1)] = COLORS[n.track]
    return img


def synthesize(song: Song, sample_rate: int = 22050) -> tuple[np.ndarray, str]:
    """Audio of the song and the synthesiser used: FluidSynth + General MIDI soundfont when both are
    installed (Debian ``fluidsynth fluid-soundfont-gm`` + PyPI ``pyfluidsynth``), else pretty_midi's
    sine synthesiser."""
    pm = song_to_midi(song, mark_themes=False)
    for inst, program in zip(pm.instruments, (73, 0)):  # flute melody over piano, when a soundfont plays it
        inst.program = program
    if SOUNDFONT.exists() and os.environ.get("STUDIO_NO_FLUIDSYNTH") != "1":
        try:
            import fluidsynth  # noqa: F401  (pyfluidsynth)

            audio = pm.fluidsynth(fs=sample_rate, sf2_path=str(SOUNDFONT))
            synth = "fluidsynth:FluidR3_GM"
        except Exception:
            audio, synth = pm.synthesize(fs=sample_rate), "pretty_midi-sine"
    else:
        audio, synth = pm.synthesize(fs=sample_rate), "pretty_midi-sine"
    peak = float(np.abs(audio).max()) if len(audio) else 0.0
    return (audio / peak * 0.8 if peak > 0 else audio).astype(np.float32), synth
