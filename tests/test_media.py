"""studio.io.media: every format carries its recipe in its own metadata and in a sidecar."""

import json

import numpy as np
import pytest

from studio.io import media

RECIPE = {"task": "t", "seed": 7, "inputs": {"prompt": "a=b;c#d\\e\nf \u00fc", "steps": 3}, "studio_version": "x"}


def _frames():
    return (np.random.default_rng(0).random((4, 16, 16, 3)) * 255).astype(np.uint8)


def _mesh():
    import trimesh

    return trimesh.creation.box()


def _midi():
    import pretty_midi

    pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(0)
    inst.notes.append(pretty_midi.Note(100, 60, 0.0, 0.5))
    pm.instruments.append(inst)
    return pm


WRITERS = {
    "png": lambda p: media.write_png(p, (np.arange(12 * 10 * 3) % 256).astype(np.uint8).reshape(12, 10, 3), RECIPE),
    "mp4": lambda p: media.write_mp4(p, _frames(), 8, RECIPE),
    "gif": lambda p: media.write_gif(p, _frames(), 8, RECIPE),
    "wav": lambda p: media.write_wav(p, np.sin(np.arange(800) / 7.0) * 0.5, 16000, RECIPE),
    "glb": lambda p: media.write_glb(p, _mesh(), RECIPE),
    "mid": lambda p: media.write_midi(p, _midi(), RECIPE),
}


@pytest.mark.parametrize("fmt", sorted(WRITERS))
def test_recipe_round_trip_in_file_and_sidecar(tmp_path, fmt):
    path = WRITERS[fmt](tmp_path / f"out.{fmt}")
    assert path.exists()
    # from the format's own metadata (sidecar removed so it cannot be the source)
    sidecar = media.sidecar_path(path)
    assert json.loads(sidecar.read_text()) == RECIPE
    sidecar.unlink()
    assert media.read_recipe(path) == RECIPE
    # no temporary files left beside the output
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_writes_are_deterministic(tmp_path):
    for fmt, write in WRITERS.items():
        a = write(tmp_path / f"a.{fmt}").read_bytes()
        b = write(tmp_path / f"b.{fmt}").read_bytes()
        assert a == b, fmt


def test_files_are_readable_by_their_libraries(tmp_path):
    import pretty_midi
    import trimesh
    from PIL import Image

    with Image.open(WRITERS["png"](tmp_path / "x.png")) as im:
        assert im.size == (10, 12)
    audio, sr = media.read_wav(WRITERS["wav"](tmp_path / "x.wav"))
    assert sr == 16000 and audio.shape == (800, 1)
    assert np.allclose(audio[:, 0], np.sin(np.arange(800) / 7.0) * 0.5, atol=1e-4)
    scene = trimesh.load(WRITERS["glb"](tmp_path / "x.glb"))
    assert len(scene.geometry) == 1
    pm = pretty_midi.PrettyMIDI(str(WRITERS["mid"](tmp_path / "x.mid")))
    assert pm.instruments[0].notes[0].pitch == 60
    import imageio.v2 as imageio

    frames = imageio.mimread(WRITERS["mp4"](tmp_path / "x.mp4"))
    assert len(frames) == 4 and frames[0].shape == (16, 16, 3)


def test_sidecar_fallback_and_missing_recipe(tmp_path):
    from PIL import Image

    plain = tmp_path / "plain.png"
    Image.new("RGB", (4, 4)).save(plain)
    with pytest.raises(media.RecipeNotFound):
        media.read_recipe(plain)
    media.write_json(media.sidecar_path(plain), RECIPE)
    assert media.read_recipe(plain) == RECIPE
    assert media.read_recipe(media.sidecar_path(plain)) == RECIPE
    with pytest.raises(FileNotFoundError):
        media.read_recipe(tmp_path / "nope.png")


def test_bad_arrays_are_rejected_before_anything_is_written(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        media.write_png(tmp_path / "a.png", np.zeros((4, 4, 3), np.float32), RECIPE)
    with pytest.raises(ValueError, match="NaN"):
        media.write_wav(tmp_path / "a.wav", np.array([0.0, np.nan]), 16000, RECIPE)
    with pytest.raises(ValueError, match="frames"):
        media.write_mp4(tmp_path / "a.mp4", np.zeros((4, 4, 3), np.uint8), 8, RECIPE)
    assert list(tmp_path.iterdir()) == []
