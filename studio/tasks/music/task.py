"""The ``music`` task: theme MIDI (or a piece to retrieve the theme from) -> MIDI + WAV + piano roll."""

from __future__ import annotations

from pathlib import Path

import torch
from pydantic import Field

from studio.tasks.base import InputError, ModelKey, OutputFile, RunContext, Task, TaskInputs, TaskResult

MAX_BARS = 64


class MusicInputs(TaskInputs):
    theme: str | None = Field(None, description="Theme MIDI (melody, at most 4 bars).", json_schema_extra={"media": "midi"})
    from_piece: str | None = Field(None, description="A MIDI piece to retrieve the theme from instead.",
                                   json_schema_extra={"media": "midi"})
    bars: int = Field(32, ge=4, le=MAX_BARS, description="Length of the generated piece in bars.")
    tempo: int | None = Field(None, ge=40, le=220, description="Tempo in bpm; empty keeps the model's.")
    temperature: float = Field(1.2, gt=0.0, le=2.0, description="Sampling temperature (paper: 1.2).")
    top_p: float = Field(0.9, gt=0.0, le=1.0, description="Nucleus sampling mass (paper: 0.9).")
    model: str = Field("music-theme", description="music-theme (Theme Transformer) or music-baseline (prompt).")


class MusicTask(Task):
    name = "music"
    title = "Music (Theme Transformer)"
    description = "Generate a piece in which a given theme recurs and develops (arXiv 2111.04093)."
    Inputs = MusicInputs
    output_kinds = ("midi", "audio", "image", "json")
    default_model = "music-theme"

    # ---- validation: before any work starts
    def check(self, inputs: MusicInputs) -> None:
        from studio.tasks.music.pipeline import MAX_THEME_BARS
        from studio.tasks.music.tokenizer import TokenizeError, song_from_midi

        if (inputs.theme is None) == (inputs.from_piece is None):
            raise InputError("theme", "give exactly one of theme (a MIDI theme) or from_piece (a MIDI piece)")
        field = "theme" if inputs.theme is not None else "from_piece"
        path = Path(getattr(inputs, field))
        if not path.is_file():
            raise InputError(field, f"no such file: {path}")
        try:
            song = song_from_midi(path)
        except TokenizeError as exc:
            raise InputError(field, str(exc)) from None
        if field == "theme":
            last = max(n.start for n in song.notes)
            bars = sum(1 for s in song.bar_starts if s <= last)
            if bars > MAX_THEME_BARS:
                raise InputError("theme", f"the theme is {bars} bars long; at most {MAX_THEME_BARS} are allowed")
        elif len(song.bars) < 4:
            raise InputError("from_piece", "the piece is shorter than 4 bars; too short to find a recurring theme")
        from studio.paths import model_path

        if not (model_path(inputs.model) / "config.json").exists():
            raise InputError("model", f"unknown model {inputs.model!r} (expected a folder under models/, e.g. music-theme)")

    # ---- loading
    def load(self, key: ModelKey, device: str = "cpu", dtype: str = "float32"):
        from studio.core.checkpoint import load_model
        from studio.paths import model_path
        from studio.tasks.music.pipeline import MusicPipeline, load_models
        from studio.tasks.music.themes import MelodyEncoder

        name = key.model or self.default_model
        folder = model_path(name)
        if not (folder / "config.json").exists():
            raise FileNotFoundError(f"model {name!r} not found at {folder}; train it with scripts/train_music.py")
        retr_dir = folder / "retriever" if (folder / "retriever").exists() else model_path("music-theme") / "retriever"
        model = load_models(folder, device=device)
        retriever = load_model(MelodyEncoder, retr_dir, device=device)
        amp = torch.bfloat16 if dtype == "bfloat16" else None
        return MusicPipeline(model, retriever, name=name, device=device, autocast_dtype=amp)

    # ---- one job
    def run(self, pipeline, inputs: MusicInputs, ctx: RunContext) -> TaskResult:
        from studio.io.media import write_json, write_midi, write_png, write_wav
        from studio.tasks.music.metrics import recurrences
        from studio.tasks.music.pipeline import ThemeError
        from studio.tasks.music.render import piano_roll, synthesize
        from studio.tasks.music.tokenizer import song_from_midi, song_to_midi

        # 1. the theme
        try:
            if inputs.theme is not None:
                theme = pipeline.theme_from_midi_song(song_from_midi(inputs.theme))
                retrieved = None
            else:
                theme, retrieved = pipeline.theme_from_piece(song_from_midi(inputs.from_piece))
        except ThemeError as exc:
            raise InputError(exc.field, str(exc)) from None
        ctx.progress(0.02, "theme ready")
        # 2. decode, reporting every 16 tokens (also the cancel check)

        def on_token(i: int, n: int, seq: torch.Tensor) -> None:
            if i % 16 == 0:
                ctx.step(min(i, n - 1), n, f"token {i}")

        out = pipeline.generate(theme, inputs.bars, inputs.temperature, inputs.top_p, generator=ctx.generator("cpu"),
                                tempo=inputs.tempo, callback=on_token)
        song = out.song
        # 3. where the theme recurs
        rec = recurrences(song, theme, pipeline.retriever)
        if not song.themes:  # the baseline has no markers: mark what the retrieval embedding finds
            song.themes = [(b, b + 2) for b in rec["bars"]]
        # 4. files
        recipe = ctx.recipe
        files = [
            OutputFile(write_midi(ctx.path("music.mid"), song_to_midi(song), recipe), "midi", "generated piece"),
            OutputFile(write_midi(ctx.path("theme.mid"), song_to_midi(theme, mark_themes=False), recipe), "midi", "theme"),
        ]
        audio, synth = synthesize(song)
        files.append(OutputFile(write_wav(ctx.path("music.wav"), audio, 22050, {**recipe, "synth": synth}), "audio", synth))
        files.append(OutputFile(write_png(ctx.path("piano_roll.png"), piano_roll(song), recipe), "image", "piano roll"))
        data = {
            "bars": len(song.bars),
            "theme_regions": [list(r) for r in song.themes],
            "theme_recurrences": rec["count"],
            "theme_recurrence_bars": rec["bars"],
            "exact_recurrences": rec["exact"],
            "retrieved_theme": None if retrieved is None else {"bar": retrieved.theme_bar, "occurrences": retrieved.occurrences},
            "tokens": len(out.tokens),
            "grammar_valid": out.valid,
            "synth": synth,
            "model": pipeline.name,
        }
        files.append(OutputFile(write_json(ctx.path("music.json"), {**data, "recipe": recipe}), "json", "summary"))
        ctx.progress(1.0, "done")
        return TaskResult(files=files, data=data)
