"""Train the music task end to end: corpus -> retriever -> theme labels -> both models -> export.

``studio train music CONFIG`` and ``scripts/train_music.py --config CONFIG`` call ``main``. The
config is a ``TrainConfig`` (shared loop keys, used for both models) plus the sections below.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from pydantic import Field
from torch.utils.data import DataLoader

from studio.train.config import Section, TrainConfig, load_config


class ModelSection(Section):
    dim: int = Field(192, ge=16)
    heads: int = Field(6, ge=1)
    enc_layers: int = Field(2, ge=1)
    dec_layers: int = Field(4, ge=2)
    context: int = Field(512, ge=32)


class DataSection(Section):
    sources: list[str] = ["ryansMammoth", "bach"]
    cache: str | None = None  # a corpus.jsonl.gz; default datasets/music/corpus.jsonl.gz (built if missing)
    midi_folder: str | None = None  # train on a user's MIDI folder instead of the corpus
    limit: int | None = Field(None, ge=1, description="Use at most this many training songs.")
    copies: int = Field(2, ge=1, description="Transposed copies of each window.")
    transpose: tuple[int, int] = (-5, 6)


class RetrieverSection(Section):
    steps: int = Field(1500, ge=1)
    batch: int = Field(256, ge=8)
    planted_pieces: int = Field(60, ge=4, description="Planted-theme pieces used to pick DBSCAN's eps.")
    eps_grid: list[float] = [0.02, 0.04, 0.06, 0.08, 0.1, 0.13, 0.16, 0.2, 0.25]


class ExportSection(Section):
    theme_dir: str | None = "models/music-theme"
    baseline_dir: str | None = "models/music-baseline"
    example_dir: str | None = "examples/music"  # a theme + its source piece from the test split, for the demo


class MusicTrainConfig(TrainConfig):
    model: ModelSection = ModelSection()
    data: DataSection = DataSection()
    retriever: RetrieverSection = RetrieverSection()
    export: ExportSection = ExportSection()
    baseline_steps: int | None = Field(None, ge=1, description="Baseline optimizer steps (default: max_steps).")
    init_from: str | None = Field(None, description="Continue from an earlier run's output_dir (its theme/final, baseline/final).")
    threads: int | None = Field(1, ge=1, description="torch threads; 1 is fastest on a CPU shared with other jobs.")


PARTS = ("retriever", "theme", "baseline", "export")


def main(config_path: str | Path, parts: tuple[str, ...] = PARTS) -> dict:
    return run(load_config(config_path, MusicTrainConfig), parts)


def log(msg: str) -> None:
    print(f"[music] {msg}", flush=True)


def run(cfg: MusicTrainConfig, parts: tuple[str, ...] = PARTS) -> dict:
    """Each part leaves its result in ``output_dir`` so parts can run as separate processes
    (the two models train side by side after the retriever)."""
    from studio.core.checkpoint import load_model, save_model
    from studio.tasks.music import data as D
    from studio.tasks.music.themes import MelodyEncoder
    from studio.tasks.music.windows import encode_song

    bad = set(parts) - set(PARTS)
    if bad:
        raise ValueError(f"parts: unknown {sorted(bad)}; choose from {PARTS}")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    # 1. corpus and split
    records = _records(cfg)
    split = D.load_split(records)
    if cfg.data.limit:
        split["train"] = split["train"][: cfg.data.limit]
    # 2. theme retriever (contrastive) + eps from planted pieces, then theme labels for every song
    if "retriever" in parts:
        t = time.time()
        encoder, retr = _train_retriever(cfg, split)
        save_model(encoder, out / "retriever", metadata={"task": "music", "kind": "retriever"})
        labels = _label_themes(encoder, records)
        _atomic_json(out / "themes.json", labels)
        info = {"config": cfg.to_json_dict(), "songs": {k: len(v) for k, v in split.items()},
                "retriever": {**retr, "seconds": round(time.time() - t)}}
        _atomic_json(out / "retriever_info.json", info)
    labels = json.loads((out / "themes.json").read_text())
    for r in records:
        r["song"].themes = [(b, b + 2) for b in labels.get(r["id"], [])]
    with_theme = {k: sum(1 for r in v if r["song"].themes) for k, v in split.items()}
    log(f"songs {({k: len(v) for k, v in split.items()})}, with a theme {with_theme}")
    # 3. the two models (same windows, same steps)
    if "theme" in parts or "baseline" in parts:
        enc = {k: [e for e in (encode_song(r["song"]) for r in v) if e is not None] for k, v in split.items()}
        for name in ("theme", "baseline"):
            if name in parts:
                res = _train_model(cfg, enc, baseline=name == "baseline")
                save_model(res.pop("model"), out / name / "final")
                _atomic_json(out / f"{name}_info.json", res)
    # 4. export: shipped folders with cards
    if "export" not in parts:
        return {}
    info = json.loads((out / "retriever_info.json").read_text())
    info["config"] = cfg.to_json_dict()  # the models' run (the retriever may come from an earlier one)
    info["songs_with_theme"] = with_theme
    info["theme_model"] = json.loads((out / "theme_info.json").read_text())
    info["baseline_model"] = json.loads((out / "baseline_info.json").read_text())
    encoder = load_model(MelodyEncoder, out / "retriever")
    _export(cfg, info, encoder, out)
    if cfg.export.example_dir:
        _write_example(encoder, split["test"], Path(cfg.export.example_dir))
    return info


def _atomic_json(path: Path, obj) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=str))
    tmp.replace(path)


def _records(cfg: MusicTrainConfig) -> list[dict]:
    from studio.tasks.music import data as D

    if cfg.data.midi_folder:
        return list(D.iter_midi_folder(cfg.data.midi_folder))
    path = Path(cfg.data.cache) if cfg.data.cache else D.cache_path()
    if not path.exists():
        log(f"building the corpus cache {path} (slow: music21 parses every file)")
        D.build_cache(path, tuple(cfg.data.sources))
    return [r for r in D.read_songs(path) if r["source"] in cfg.data.sources or r["source"] == "user"]


def _train_retriever(cfg: MusicTrainConfig, split: dict):
    from studio.tasks.music import planted as P
    from studio.tasks.music.themes import RetrieverTrainSpec, embed, song_segments, theme_from_embeddings, train_retriever

    spec = RetrieverTrainSpec(steps=cfg.retriever.steps, batch=cfg.retriever.batch, seed=cfg.seed)
    songs = [r["song"] for r in split["train"]]
    encoder = train_retriever(songs, spec, log=lambda s, l: log(f"retriever step {s} loss {l:.3f}"))
    try:
        pieces = P.make_planted([r["song"] for r in split["val"]], cfg.retriever.planted_pieces, seed=cfg.seed + 1)
    except ValueError:  # a small validation split: plant into training melodies instead
        pieces = P.make_planted(songs, cfg.retriever.planted_pieces, seed=cfg.seed + 1)
    segs = [song_segments(pc.song) for pc in pieces]
    embs = [embed(encoder, s) for s in segs]
    scores = {}
    for eps in cfg.retriever.eps_grid:
        f1s = []
        for pc, sg, em in zip(pieces, segs, embs):
            res = theme_from_embeddings(sg, em, eps)
            f1s.append(P.f1(res.occurrences if res else [], pc.occurrences))
        scores[eps] = float(np.mean(f1s))
    best = max(scores, key=scores.get)
    encoder.register_to_config(eps=best)
    log(f"retriever eps={best} (val planted F1 {scores[best]:.3f}; grid {scores})")
    return encoder, {"steps": spec.steps, "eps": best, "val_planted_f1": scores[best], "eps_grid_f1": scores}


def _label_themes(encoder, records: list[dict]) -> dict[str, list[int]]:
    from studio.tasks.music.themes import find_theme

    labels = {}
    for r in records:
        res = find_theme(r["song"], encoder)
        if res is not None:
            labels[r["id"]] = res.occurrences
    return labels


def _build(cfg: MusicTrainConfig, baseline: bool):
    from studio.tasks.music.model import PromptDecoder, ThemeTransformer, baseline_layers_matching
    from studio.tasks.music.vocab import VOCAB
    from studio.tasks.music.windows import MAX_THEME_TOKENS

    m = cfg.model
    if baseline:
        layers = baseline_layers_matching(m.dim, m.enc_layers, m.dec_layers)
        return PromptDecoder(len(VOCAB), m.dim, m.heads, layers, context=m.context + MAX_THEME_TOKENS + 2)
    return ThemeTransformer(len(VOCAB), m.dim, m.heads, m.enc_layers, m.dec_layers, context=m.context)


def _train_model(cfg: MusicTrainConfig, enc: dict, baseline: bool) -> dict:
    from studio.train.trainer import Trainer
    from studio.tasks.music.model import num_params
    from studio.tasks.music.objectives import baseline_objective, mean_loss, theme_objective
    from studio.tasks.music.windows import WindowDataset, collate_baseline, collate_theme

    name = "baseline" if baseline else "theme"
    torch.manual_seed(cfg.seed)
    model = _build(cfg, baseline)
    if cfg.init_from:  # a second training phase: same architecture, weights of the earlier run
        from studio.core.checkpoint import load_model

        model = load_model(type(model), Path(cfg.init_from) / name / "final").train()
    ds = WindowDataset(enc["train"], cfg.model.context, cfg.seed, tuple(cfg.data.transpose), cfg.data.copies, baseline)
    val = WindowDataset(enc["val"], cfg.model.context, cfg.seed, None, 1, baseline)
    collate = collate_baseline if baseline else collate_theme
    objective = baseline_objective if baseline else theme_objective
    steps = (cfg.baseline_steps or cfg.max_steps) if baseline else cfg.max_steps
    sub = cfg.model_copy(update={"output_dir": Path(cfg.output_dir) / name, "max_steps": steps})
    log(f"{name}: {num_params(model) / 1e6:.2f}M params, {len(ds)} train windows, {len(val)} val windows, {steps} steps")
    t = time.time()
    trainer = Trainer(model, objective, ds, sub, collate_fn=collate)
    result = trainer.train()
    seconds = time.time() - t
    model = trainer.unwrapped_model
    loader = DataLoader(val, batch_size=cfg.batch_size, collate_fn=collate)
    val_loss = mean_loss(model, objective, loader, trainer.autocast) if len(val) else float("nan")
    log(f"{name}: {steps} steps in {seconds:.0f}s, final train loss {result.loss:.3f}, val loss {val_loss:.3f}")
    return {"model": model, "params": num_params(model), "steps": steps, "seconds": round(seconds),
            "train_loss": result.loss, "val_loss": val_loss, "train_windows": len(ds), "val_windows": len(val),
            "loss_curve": str(result.loss_curve) if result.loss_curve else None}


def _export(cfg: MusicTrainConfig, info: dict, encoder, out: Path) -> None:
    from studio.core.checkpoint import load_model, save_model
    from studio.paths import home
    from studio.tasks.music.card import write_card
    from studio.tasks.music.model import PromptDecoder, ThemeTransformer

    for key, cls, name, folder in (("theme_model", ThemeTransformer, "theme", cfg.export.theme_dir),
                                   ("baseline_model", PromptDecoder, "baseline", cfg.export.baseline_dir)):
        if not folder:
            continue
        model = load_model(cls, out / name / "final")
        d = Path(folder) if Path(folder).is_absolute() else home() / folder
        meta = {"task": "music", "kind": key, "steps": info[key]["steps"], "val_loss": info[key]["val_loss"]}
        save_model(model, d, dtype=torch.bfloat16, metadata=meta)
        if key == "theme_model":
            save_model(encoder, d / "retriever", metadata={"task": "music", "kind": "retriever",
                                                           "eps": info["retriever"]["eps"]})
        write_card(d, key, info)
        log(f"exported {key} to {d}")


def _write_example(encoder, test: list[dict], folder: Path) -> None:
    """examples/music/{theme,source}.mid: a retrieved theme of a held-out 4/4 folk tune."""
    from studio.io.media import write_midi
    from studio.paths import home
    from studio.tasks.music.themes import find_theme
    from studio.tasks.music.tokenizer import MELODY, song_to_midi

    folder = folder if folder.is_absolute() else home() / folder
    for r in test:
        song = r["song"]
        if r["source"] != "ryansMammoth" or set(song.bars) != {16}:
            continue
        res = find_theme(song, encoder)
        if res is None or len(res.occurrences) < 3:
            continue
        theme = song.slice_bars(res.theme_bar, res.theme_bar + res.bars, tracks=(MELODY,))
        if len(theme.notes) < 6:
            continue
        recipe = {"task": "music", "source": r["id"], "theme_bar": res.theme_bar, "occurrences": res.occurrences}
        write_midi(folder / "theme.mid", song_to_midi(theme, mark_themes=False), recipe)
        write_midi(folder / "source.mid", song_to_midi(song, mark_themes=False), recipe)
        log(f"example theme from {r['id']} bars {res.theme_bar}..{res.theme_bar + res.bars} -> {folder}")
        return
