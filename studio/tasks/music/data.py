"""Corpus: music21's bundled folk tunes and chorales -> songs -> cached, split, windowed.

Subset (stated in ``datasets/music/README.md``): Ryan's Mammoth Collection (folk tunes, melody
only) and the Bach chorales (soprano = melody, alto/tenor/bass = accompaniment). The Essen and
O'Neill files are whole collections (hundreds of tunes per file) that take music21 many minutes
each, and Palestrina/Monteverdi/Trecento are polyphony with no melody track: left out by
default. Conversion is slow on this CPU, so songs are cached as gzipped JSON lines.

The split is by piece and deterministic: sha1 of the piece id decides train (90%), val (5%),
test (5%); ``datasets/music/split.json`` records it.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import logging
from pathlib import Path
from typing import Iterator

from studio.paths import datasets_dir
from studio.tasks.music.tokenizer import Note, Song, TokenizeError, song_from_midi

log = logging.getLogger(__name__)

CORPUS_SOURCES = ("ryansMammoth", "bach")
MIN_BARS = 8
MIN_MELODY_NOTES = 16
MAX_SCORES_PER_FILE = 8  # ABC files of collections hold several tunes (music21 Opus)


def music_dir() -> Path:
    return datasets_dir() / "music"


def cache_path() -> Path:
    return music_dir() / "corpus.jsonl.gz"


def split_of(piece_id: str) -> str:
    h = int(hashlib.sha1(piece_id.encode()).hexdigest(), 16) % 100
    return "train" if h < 90 else "val" if h < 95 else "test"


# ---------------------------------------------------------------- (de)serialisation


def song_to_json(song: Song) -> dict:
    return {
        "bars": song.bars,
        "tempi": song.tempi,
        "notes": [[n.track, n.pitch, n.start, n.duration, n.velocity] for n in song.notes],
        "themes": [list(t) for t in song.themes],
    }


def song_from_json(d: dict) -> Song:
    return Song(list(d["bars"]), list(d["tempi"]), [Note(*n) for n in d["notes"]], [tuple(t) for t in d.get("themes", [])])


def write_songs(path: Path, records: list[dict]) -> None:
    """Atomic write of ``{"id", "source", "song"}`` records."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with gzip.open(tmp, "wt", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps({"id": r["id"], "source": r["source"], "song": song_to_json(r["song"])}) + "\n")
    tmp.replace(path)


def read_songs(path: Path | None = None) -> list[dict]:
    path = path or cache_path()
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [{**r, "song": song_from_json(r["song"])} for r in map(json.loads, f)]


# ---------------------------------------------------------------- conversion


def _keep(song: Song) -> bool:
    return len(song.bars) >= MIN_BARS and len(song.melody()) >= MIN_MELODY_NOTES


def _music21_scores(path: Path):
    from music21 import converter, stream

    obj = converter.parse(path)
    if isinstance(obj, stream.Opus):
        return list(obj.scores)[:MAX_SCORES_PER_FILE]
    return [obj]


def _score_to_song(score) -> Song:
    import pretty_midi
    from music21 import midi

    data = midi.translate.music21ObjectToMidiFile(score).writestr()
    return song_from_midi(pretty_midi.PrettyMIDI(io.BytesIO(data)))


def iter_corpus(sources: tuple[str, ...] = CORPUS_SOURCES, limit: int | None = None) -> Iterator[dict]:
    """Songs from music21's bundled corpus; unreadable or too-short pieces are skipped."""
    from music21 import corpus

    paths = sorted(p for p in corpus.getPaths() if any(f"/{s}/" in str(p) for s in sources))
    n = 0
    for p in paths:
        source = next(s for s in sources if f"/{s}/" in str(p))
        try:
            scores = _music21_scores(p)
        except Exception as exc:  # music21 parsers raise many kinds on odd files
            log.info("skip %s: %s", p.name, exc)
            continue
        for k, score in enumerate(scores):
            try:
                song = _score_to_song(score)
            except (TokenizeError, Exception) as exc:
                log.info("skip %s[%d]: %s", p.name, k, exc)
                continue
            if _keep(song):
                yield {"id": f"{source}/{p.stem}#{k}", "source": source, "song": song}
                n += 1
                if limit is not None and n >= limit:
                    return


def iter_midi_folder(folder: str | Path, melody: int | None = None) -> Iterator[dict]:
    """A user's MIDI folder trains the same way (melody rule: ``tokenizer.pick_melody``)."""
    for p in sorted(Path(folder).rglob("*")):
        if p.suffix.lower() not in (".mid", ".midi"):
            continue
        try:
            song = song_from_midi(p, melody=melody)
        except TokenizeError as exc:
            log.warning("skip %s: %s", p, exc)
            continue
        if _keep(song):
            yield {"id": f"user/{p.relative_to(folder)}", "source": "user", "song": song}


def build_cache(out: Path | None = None, sources: tuple[str, ...] = CORPUS_SOURCES, limit: int | None = None,
                midi_folder: str | Path | None = None) -> Path:
    """Convert the corpus (or a user folder) once and write songs + the split manifest."""
    out = out or cache_path()
    records = list(iter_midi_folder(midi_folder) if midi_folder else iter_corpus(sources, limit))
    write_songs(out, records)
    write_split(out.parent / "split.json", [r["id"] for r in records])
    return out


def write_split(path: Path, ids: list[str]) -> dict[str, list[str]]:
    split = {"train": [], "val": [], "test": []}
    for i in ids:
        split[split_of(i)].append(i)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"rule": "sha1(id) % 100: <90 train, <95 val, else test", **split}, indent=0))
    tmp.replace(path)
    return split


def load_split(records: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {"train": [], "val": [], "test": []}
    for r in records:
        out[split_of(r["id"])].append(r)
    return out


def merge_caches(parts: list[Path], out: Path | None = None) -> Path:
    """Join per-source caches (built in parallel) into one cache + split manifest."""
    out = out or cache_path()
    records = [r for p in parts for r in read_songs(p)]
    write_songs(out, records)
    write_split(out.parent / "split.json", [r["id"] for r in records])
    return out


if __name__ == "__main__":  # python -m studio.tasks.music.data [SOURCE OUT]  (builds the cache)
    import sys
    import time

    logging.basicConfig(level=logging.WARNING)
    t = time.time()
    if len(sys.argv) == 3:
        path = Path(sys.argv[2])
        write_songs(path, list(iter_corpus((sys.argv[1],))))
    else:
        path = build_cache()
    print(f"wrote {path} in {time.time() - t:.0f}s")
