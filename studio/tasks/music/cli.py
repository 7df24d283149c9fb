"""``studio music ...``: music-specific commands (mounted by the main CLI)."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="Music (Theme Transformer) tools.", no_args_is_help=True)


@app.command("themes")
def themes(
    song: Path = typer.Argument(..., help="A MIDI file to find the theme of."),
    melody: int | None = typer.Option(None, help="Index of the melody track (default: the melody rule)."),
    model: str = typer.Option("music-theme", help="Model folder whose retriever/ is used."),
    eps: float | None = typer.Option(None, help="DBSCAN eps (cosine distance); default: the tuned one."),
) -> None:
    """Print the retrieved theme (largest cluster of 2-bar melody segments) and its occurrences."""
    from studio.core.checkpoint import load_model
    from studio.paths import model_path
    from studio.tasks.music.themes import MelodyEncoder, find_theme
    from studio.tasks.music.tokenizer import TokenizeError, song_from_midi
    from studio.tasks.music.windows import theme_events

    try:
        s = song_from_midi(song, melody=melody)
    except TokenizeError as exc:
        typer.echo(f"song: {exc}", err=True)
        raise typer.Exit(2)
    folder = model_path(model) / "retriever"
    if not (folder / "config.json").exists():
        typer.echo(f"model: no retriever at {folder}; train with scripts/train_music.py", err=True)
        raise typer.Exit(2)
    res = find_theme(s, load_model(MelodyEncoder, folder), eps=eps)
    if res is None:
        typer.echo(f"{song.name}: {len(s.bars)} bars, no recurring 2-bar melody found")
        raise typer.Exit(1)
    typer.echo(f"{song.name}: {len(s.bars)} bars; theme at bar {res.theme_bar + 1} ({res.bars} bars), "
               f"{len(res.occurrences)} occurrences at bars {', '.join(str(b + 1) for b in res.occurrences)}")
    events = theme_events(s, res.theme_bar, res.bars)
    notes = [e.split("_")[1] for e in events if e.startswith("MelOn_")]
    import pretty_midi

    typer.echo("theme notes: " + " ".join(pretty_midi.note_number_to_name(int(p)) for p in notes))
