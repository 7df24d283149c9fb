"""MODEL_CARD.md for the shipped music models, from the training record (+ evaluation if run)."""

from __future__ import annotations

import json
from pathlib import Path

TITLES = {"theme_model": "music-theme: Theme Transformer (gated parallel attention)",
          "baseline_model": "music-baseline: decoder-only, theme as a prompt prefix"}


def write_card(folder: Path, key: str, info: dict, evaluation: dict | None = None) -> Path:
    folder = Path(folder)
    m = info[key]
    rec = {k: v for k, v in info.items() if k not in ("theme_model", "baseline_model")}
    rec[key] = {k: v for k, v in m.items() if k != "model"}
    (folder / "train_info.json").write_text(json.dumps(rec, indent=1, default=str))
    cfg = info["config"]
    lines = [
        f"# {TITLES[key]}",
        "",
        "Trained by `scripts/train_music.py --config studio/tasks/music/configs/default.toml`"
        + (", then continued in the phases listed below (`configs/continue*.toml`, each run as `--parts theme`, "
           "`--parts baseline`, `--parts export`)" if cfg.get("init_from") else "")
        + f" on this project's 2-core CPU ({cfg.get('threads') or 'all'} torch thread(s), mixed precision: "
        f"{cfg['mixed_precision']}). Paper: Theme Transformer, arXiv 2111.04093.",
        "",
        "## Data",
        f"- music21's bundled corpus, sources {', '.join(cfg['data']['sources'])}; songs per split "
        f"{info['songs']} (split by piece: sha1(id) % 100, <90 train, <95 val, else test).",
        f"- Songs with a retrieved theme (used for training): {info['songs_with_theme']}.",
        "- REMI-like events on a 1/16 grid, melody + accompaniment tracks, theme markers; random "
        f"transposition {cfg['data']['transpose']} semitones, {cfg['data']['copies']} copies per window.",
        "",
        "## Model and training",
        f"- {m['params'] / 1e6:.2f}M parameters; width {cfg['model']['dim']}, {cfg['model']['heads']} heads, "
        + ("theme encoder {enc} layers + {dec} gated decoder layers (last {x} XOR)".format(
            enc=cfg["model"]["enc_layers"], dec=cfg["model"]["dec_layers"], x=cfg["model"]["dec_layers"] // 2)
           if key == "theme_model" else "plain causal decoder blocks, parameters matched to music-theme")
        + f"; context {cfg['model']['context']} song tokens.",
        "- " + "".join(f"{p}, then\n  " for p in _earlier_phases(cfg.get("init_from"), key.split("_")[0]))
        + f"{m['steps']} optimizer steps, batch {cfg['batch_size']}, AdamW lr {cfg['optimizer']['lr']}, "
        f"warm-up {cfg['schedule']['warmup_steps']}, {cfg['schedule']['name']}; {m['seconds']} s wall.",
        f"- {m['train_windows']} training windows, {m['val_windows']} validation windows.",
        "",
        "## Measured",
        f"- Final training loss {m['train_loss']:.3f}; held-out (val) cross-entropy {m['val_loss']:.3f} nats/token.",
    ]
    if key == "theme_model":
        r = info["retriever"]
        lines.append(f"- Theme retriever (in `retriever/`): {r['steps']} contrastive steps, DBSCAN eps {r['eps']} "
                     f"picked on planted-theme val pieces (F1 {r['val_planted_f1']:.3f}).")
    if evaluation:
        lines += ["", "## Evaluation (`studio eval music`, see docs/benchmarks/music.md)", ""]
        lines += [f"- {k}: {v}" for k, v in evaluation.items()]
    lines += ["", "## Limits",
              "- Tiny model, under an hour of CPU training: it learns the grammar and local style of folk tunes and",
              "  chorales, not long-range form. Velocity is constant in the corpus, so it is in the output too."]
    path = folder / "MODEL_CARD.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def _earlier_phases(run: str | None, name: str) -> list[str]:
    """The training phases before this one, oldest first, read from each run's saved Trainer config."""
    from studio.paths import home

    phases = []
    while run:
        path = Path(run) if Path(run).is_absolute() else home() / run
        cfg_file = path / name / "train_config.json"
        if not cfg_file.is_file():
            phases.append(f"earlier weights from `{run}`")
            break
        c = json.loads(cfg_file.read_text())
        phases.append(f"`{run}`: {c['max_steps']} steps at lr {c['optimizer']['lr']} "
                      f"(warm-up {c['schedule']['warmup_steps']}, {c['schedule']['name']})")
        run = c.get("init_from")
    return phases[::-1]
