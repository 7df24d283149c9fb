"""End to end on a tiny untrained model: validate → load (base + controllable adapter by name) →
run → H.264 MP4 + GIF preview + mask overlay with the recipe; cancel stops the job."""

import pytest
import torch

from studio.lora import add_lora
from studio.tasks.base import Canceled, CancelToken, ModelKey, RunContext
from studio.tasks.vfx.controls import ControlSpec, MaskBranchSpec, TimestampTokensSpec, VfxControls
from studio.tasks.vfx.effect_guide import EffectGuide, EffectGuideConfig, save_effect_guide
from studio.tasks.vfx.model import VideoDiT
from studio.tasks.vfx.pipeline import load_base, save_controllable_adapter
from studio.tasks.vfx.task import VfxTask


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    root = tmp_path_factory.mktemp("lib")
    torch.manual_seed(0)
    VideoDiT(sample_frames=16, sample_size=32, patch_size=(2, 8, 8), hidden_size=32, depth=2,
             num_heads=2).save_pretrained(str(root / "models" / "vfx-base"))
    dit = load_base(root / "models" / "vfx-base")
    add_lora(dit, "vfx-mixed", rank=2)
    controls = VfxControls(dit, ControlSpec(TimestampTokensSpec(), MaskBranchSpec(1)))
    save_controllable_adapter(dit, controls, "vfx-mixed", root / "adapters" / "vfx-mixed", {"steps": 0})
    dit = load_base(root / "models" / "vfx-base")  # the default guide for autoguidance: another adapter
    add_lora(dit, "vfx-mixed-4000", rank=2)
    guide = VfxControls(dit, ControlSpec(TimestampTokensSpec(), MaskBranchSpec(1)))
    save_controllable_adapter(dit, guide, "vfx-mixed-4000", root / "adapters" / "vfx-mixed-4000", {"steps": 0})
    save_effect_guide(EffectGuide(EffectGuideConfig(width=8)), root / "models" / "vfx-effect-guide")  # for the default
    return root


def test_generate_writes_video_preview_and_overlay(library, tmp_path, monkeypatch):
    monkeypatch.setenv("STUDIO_MODELS", str(library / "models"))
    monkeypatch.setenv("STUDIO_ADAPTERS", str(library / "adapters"))
    task = VfxTask()
    inputs = task.validate({"image": "examples/vfx/scene.png", "box": "73,25,112,64", "effect": "melt",
                            "start": 0.25, "end": 1.0, "steps": 2, "seed": 3})
    pipe = task.load(task.cache_key(inputs))
    seen = []
    ctx = RunContext(seed=3, out_dir=tmp_path, recipe={"task": "vfx", "inputs": inputs.model_dump(), "seed": 3},
                     progress_fn=lambda f, m, p: seen.append(f))
    result = task.run(pipe, inputs, ctx)
    kinds = {f.label: f for f in result.files}
    assert set(kinds) == {"effect video", "animated preview", "mask overlay"}
    import imageio.v3 as iio

    frames = iio.imread(kinds["effect video"].path)
    assert frames.shape == (16, 256, 256, 3)
    assert iio.imread(kinds["animated preview"].path).shape[0] == 16
    from studio.io.media import read_recipe

    assert read_recipe(kinds["effect video"].path)["resolved_prompt"] == "the yellow object melts"
    assert seen and seen[-1] == 1.0
    assert result.data["requested_frames"] == [2, 8]
    assert 0.0 <= result.data["motion_inside_mask"] <= 1.0


def test_cancel_stops_between_steps(library, tmp_path, monkeypatch):
    monkeypatch.setenv("STUDIO_MODELS", str(library / "models"))
    monkeypatch.setenv("STUDIO_ADAPTERS", str(library / "adapters"))
    task = VfxTask()
    inputs = task.validate({"image": "examples/vfx/scene.png", "point": "95,99", "steps": 3, "autoguidance": 1.0})
    pipe = task.load(ModelKey("vfx-base", (("vfx-mixed", 1.0),)))
    token = CancelToken()
    token.cancel()
    with pytest.raises(Canceled):
        task.run(pipe, inputs, RunContext(seed=0, out_dir=tmp_path / "out", cancel=token))
    assert not list((tmp_path / "out").glob("*.mp4")) if (tmp_path / "out").exists() else True


def test_guidance_steers_from_the_empty_caption(library, monkeypatch):
    """The unguided branch is the same request with the empty caption (reference, mask, times kept);
    guidance 1 is the plain model, guidance 3 changes the clip."""
    import numpy as np

    from studio.tasks.vfx.pipeline import Request, VfxPipeline

    monkeypatch.setenv("STUDIO_MODELS", str(library / "models"))
    monkeypatch.setenv("STUDIO_ADAPTERS", str(library / "adapters"))
    pipe = VfxPipeline.load("vfx-base", (("vfx-mixed", 1.0),))
    with torch.no_grad():  # a fresh DiT's zero-initialised adaLN ignores the text; make the prompt matter
        for p in pipe.model.dit.parameters():
            if p.abs().sum() == 0:
                p.normal_(0, 0.05)
    rng = np.random.default_rng(0)
    mask = np.zeros((32, 32), bool)
    mask[8:20, 8:20] = True
    req = Request(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8), "the red object explodes", mask, 0.25, 1.0,
                  "explode")
    cond, uncond = pipe._cond([req], 16, with_uncond=True)
    empty, _ = pipe._cond([Request(req.reference, "", mask, 0.25, 1.0)], 16)
    torch.testing.assert_close(uncond["pooled"], empty["pooled"])
    assert cond["effect"] == ["explode"] and uncond["effect"] == empty["effect"] == [""]  # the name goes too
    for key in ("ref", "mask", "start_s", "end_s"):
        assert torch.equal(uncond[key], cond[key])
    clip = lambda w: pipe.generate([req], steps=2, generator=torch.Generator().manual_seed(0), guidance=w)  # noqa: E731
    plain = pipe.generate([req], steps=2, generator=torch.Generator().manual_seed(0))
    assert np.array_equal(clip(1.0), plain)
    assert not np.array_equal(clip(3.0), plain)


def test_autoguidance_steps_away_from_the_guide_model(library, monkeypatch):
    """The guide is a second copy of the base with its own adapter, given the same request. A guide that predicts
    what the model predicts changes nothing at any scale; another guide does; without a guide it is refused; the
    task keys its pipeline by the guide only when autoguidance is on, and names an unknown guide."""
    import numpy as np

    from studio.tasks.base import InputError
    from studio.tasks.vfx.pipeline import Request, VfxPipeline

    monkeypatch.setenv("STUDIO_MODELS", str(library / "models"))
    monkeypatch.setenv("STUDIO_ADAPTERS", str(library / "adapters"))
    mask = np.zeros((32, 32), bool)
    mask[8:20, 8:20] = True
    req = Request(np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8), "the red object melts",
                  mask, 0.25, 1.0, "melt")

    def clip(pipe, w):
        return pipe.generate([req], steps=2, generator=torch.Generator().manual_seed(0), autoguidance=w)

    itself = VfxPipeline.load("vfx-base", (("vfx-mixed", 1.0),), guide=(("vfx-mixed", 1.0),))
    plain = clip(itself, 1.0)
    assert np.array_equal(clip(itself, 3.0), plain)  # ε + (w − 1)(ε − ε) = ε
    other = VfxPipeline.load("vfx-base", (("vfx-mixed", 1.0),), guide=(("vfx-mixed-4000", 1.0),))
    with torch.no_grad():  # make the guide differ from the model (fresh, both predict 0: zero-initialised outputs)
        for p in other.guide.parameters():
            if p.abs().sum() == 0:
                p.normal_(0, 0.05)
    assert np.array_equal(clip(other, 1.0), plain)
    assert not np.array_equal(clip(other, 3.0), plain)
    with pytest.raises(ValueError, match="autoguidance"):
        clip(VfxPipeline.load("vfx-base", (("vfx-mixed", 1.0),)), 2.0)
    task = VfxTask()
    on = task.validate({"image": "examples/vfx/scene.png", "autoguidance": 2.0, "guide_adapter": "vfx-mixed-4000"})
    assert task.cache_key(on).guide == (("vfx-mixed-4000", 1.0),)
    assert task.cache_key(task.validate({"image": "examples/vfx/scene.png", "autoguidance": 1.0})).guide == ()
    with pytest.raises(InputError) as e:
        task.validate({"image": "examples/vfx/scene.png", "autoguidance": 2.0, "guide_adapter": "nope"})
    assert e.value.field == "guide_adapter"
    task.validate({"image": "examples/vfx/scene.png", "autoguidance": 1.0, "guide_adapter": "nope"})  # unused: fine


def test_guidance_scope_limits_guidance_to_the_requested_interval_and_mask():
    """clip: the scalar; mask: inside the mask, every frame; interval: the frames from start to end only; effect:
    those frames inside the mask only; scale 1 elsewhere (the plain model). No times → the whole clip; a bad scope
    names the field."""
    from studio.tasks.vfx.pipeline import guidance_map

    mask = torch.zeros(1, 1, 16, 4, 4)
    mask[..., 1:3, 1:3] = 1
    cond = {"ref": torch.zeros(1, 3, 4, 4), "mask": mask, "start_s": torch.tensor([0.25]), "end_s": torch.tensor([1.0])}
    assert guidance_map(3.0, "clip", cond, 16, 8.0) == 3.0
    frames = guidance_map(3.0, "interval", cond, 16, 8.0)
    assert frames.shape == (1, 1, 16, 1, 1)
    assert frames.flatten().tolist() == [1.0] * 2 + [3.0] * 7 + [1.0] * 7  # frames 2..8 (0.25 s..1 s at 8 fps)
    effect = guidance_map(3.0, "effect", cond, 16, 8.0)
    assert effect.shape == (1, 1, 16, 4, 4)
    assert effect[0, 0, 4, 1, 1] == 3.0 and effect[0, 0, 4, 0, 0] == 1.0 and effect[0, 0, 12, 1, 1] == 1.0
    assert torch.equal(guidance_map(3.0, "mask", cond, 16, 8.0), 1.0 + 2.0 * mask)
    untimed = {"ref": cond["ref"], "mask": mask}
    assert torch.equal(guidance_map(3.0, "effect", untimed, 16, 8.0), 1.0 + 2.0 * mask)
    assert guidance_map(1.0, "effect", cond, 16, 8.0) == 1.0
    with pytest.raises(ValueError, match="guidance_scope"):
        guidance_map(3.0, "everywhere", cond, 16, 8.0)


def test_frame_noise_sets_how_much_starting_noise_the_frames_share(library, monkeypatch):
    """Unset = the base's trained ρ; a ρ of 0.9999 starts every frame from (nearly) the same noise."""
    import numpy as np

    from studio.tasks.vfx.pipeline import Request, VfxPipeline

    monkeypatch.setenv("STUDIO_MODELS", str(library / "models"))
    monkeypatch.setenv("STUDIO_ADAPTERS", str(library / "adapters"))
    pipe = VfxPipeline.load("vfx-base", (("vfx-mixed", 1.0),))
    pipe.model.noise_correlation = 0.5  # as if trained with ρ 0.5, so "unset" differs from ρ 0
    seen = []
    monkeypatch.setattr("studio.tasks.vfx.pipeline.eps_model_fn",
                        lambda model, scheduler: lambda x, t, cond: seen.append(x.clone()) or torch.zeros_like(x))
    req = Request(np.full((32, 32, 3), 90, np.uint8), "the grey object spins", None, 0.25, 1.0)
    run = lambda rho: pipe.generate([req], steps=1, generator=torch.Generator().manual_seed(0), frame_noise=rho)  # noqa: E731
    run(None), run(0.5), run(0.9999), run(0.0)
    trained, explicit, shared, own = seen
    assert torch.equal(trained, explicit) and not torch.equal(trained, own)
    frame_spread = lambda x: (x - x.mean(2, keepdim=True)).std().item()  # noqa: E731
    assert frame_spread(shared) < 0.02 < frame_spread(own)


def test_denoise_redoes_an_init_clip_from_part_way(library, monkeypatch):
    """SDEdit through the pipeline: the init clip, noised to a tenth of the steps, comes back near itself, the more
    so the less is redone; from noise (denoise 1) the same request gives something else."""
    import numpy as np

    from studio.tasks.vfx.pipeline import Request, VfxPipeline

    monkeypatch.setenv("STUDIO_MODELS", str(library / "models"))
    monkeypatch.setenv("STUDIO_ADAPTERS", str(library / "adapters"))
    pipe = VfxPipeline.load("vfx-base", (("vfx-mixed", 1.0),))
    rng = np.random.default_rng(0)
    init = rng.integers(0, 256, (1, 16, 32, 32, 3), dtype=np.uint8)
    req = Request(init[0, 0], "the grey object spins", None, 0.25, 1.0)
    run = lambda d: pipe.generate([req], steps=10, generator=torch.Generator().manual_seed(0), init=init, denoise=d)  # noqa: E731
    off = lambda clip: np.abs(clip.astype(float) - init).mean()  # noqa: E731
    near, half, fresh = run(0.1), run(0.5), run(1.0)
    assert off(near) < off(half) < off(fresh) and off(near) < 0.5 * off(fresh)
    assert np.array_equal(near[0, 0], init[0, 0])
