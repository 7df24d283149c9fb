"""The noise-aware effect classifier for effect guidance: it trains on noisy clips and loads back, and the pipeline
and task use it only when asked, for a known effect."""

import numpy as np
import pytest
import torch

from studio.tasks.vfx.effect_guide import (EffectGuide, EffectGuideConfig, card, effect_log_prob_fn,
                                           load_effect_guide, save_effect_guide, train_effect_guide)
from studio.tasks.vfx.effects import EFFECT_NAMES


def test_training_records_accuracy_by_noise_band_and_the_saved_guide_loads_back(tmp_path):
    """(That it learns is measured on the shipped guide: its card's accuracy by noise band.)"""
    rec = train_effect_guide(tmp_path / "g", clips=22, steps=3, batch=4, val_clips=11,
                             config=EffectGuideConfig(width=8), log=lambda _: None)
    assert len((tmp_path / "g" / "metrics.jsonl").read_text().splitlines()) == 2  # steps 0 and 2
    assert all(0.0 <= a <= 1.0 for a in rec["val_accuracy_by_t"].values())
    assert list(rec["val_accuracy_by_t"]) == ["0-299", "300-599", "600-799", "800-899", "900-999"]
    guide = load_effect_guide(tmp_path / "g")
    assert guide.config.width == 8 and guide.config.classes == EFFECT_NAMES
    text = card(tmp_path / "g")
    assert "seed 1" in text and "| t 900-999 |" in text and (tmp_path / "g" / "loss_curve.png").is_file()


def test_log_prob_reads_the_requested_effect_and_names_an_unknown_one():
    torch.manual_seed(0)
    guide = EffectGuide(EffectGuideConfig(width=8)).eval()
    fn = effect_log_prob_fn(guide)
    z, t, ref = torch.randn(2, 3, 16, 32, 32), torch.tensor([900, 100]), torch.zeros(2, 3, 32, 32)
    logp = fn(z, t, {"effect": ["melt", "spin"], "ref": ref})  # no mask: the whole frame
    full = guide(z, t, ref, None).log_softmax(1)
    assert torch.allclose(logp, full[[0, 1], [EFFECT_NAMES.index("melt"), EFFECT_NAMES.index("spin")]], atol=1e-6)
    with pytest.raises(ValueError, match="effect: ''"):
        fn(z, t, {"effect": ["", "spin"], "ref": ref})


def test_pipeline_follows_the_guide_only_when_asked(tmp_path, monkeypatch):
    from studio.lora import add_lora
    from studio.tasks.base import InputError
    from studio.tasks.vfx.controls import ControlSpec, MaskBranchSpec, TimestampTokensSpec, VfxControls
    from studio.tasks.vfx.model import VideoDiT
    from studio.tasks.vfx.pipeline import Request, VfxPipeline, load_base, save_controllable_adapter
    from studio.tasks.vfx.task import VfxTask

    torch.manual_seed(0)
    VideoDiT(sample_frames=16, sample_size=32, patch_size=(2, 8, 8), hidden_size=32, depth=2,
             num_heads=2).save_pretrained(str(tmp_path / "models" / "vfx-base"))
    dit = load_base(tmp_path / "models" / "vfx-base")
    add_lora(dit, "a", rank=2)
    save_controllable_adapter(dit, VfxControls(dit, ControlSpec(TimestampTokensSpec(), MaskBranchSpec(1))), "a",
                              tmp_path / "adapters" / "a", {"steps": 0})
    save_effect_guide(EffectGuide(EffectGuideConfig(width=8)), tmp_path / "models" / "vfx-effect-guide")
    monkeypatch.setenv("STUDIO_MODELS", str(tmp_path / "models"))
    monkeypatch.setenv("STUDIO_ADAPTERS", str(tmp_path / "adapters"))
    mask = np.zeros((32, 32), bool)
    mask[8:20, 8:20] = True
    ref = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    pipe = VfxPipeline.load("vfx-base", (("a", 1.0),))

    def clip(effect="melt", m=mask, **kw):
        req = Request(ref, "the red object melts", m, 0.25, 1.0, effect)
        return pipe.generate([req], steps=3, generator=torch.Generator().manual_seed(0), **kw)

    plain = clip()
    assert not np.array_equal(clip(effect_guidance=50.0), plain)
    assert not np.array_equal(clip(m=None, effect_guidance=50.0), clip(m=None))  # no mask: the whole frame
    assert np.array_equal(clip(effect_guidance=50.0, effect_guidance_min_timestep=1001), plain)  # window never open
    assert np.array_equal(clip(effect=""), plain)  # off: the effect's name is not needed
    with pytest.raises(ValueError, match="effect"):
        clip(effect="", effect_guidance=2.0)
    from studio.diffusion import NoiseSelection

    picks = []
    monkeypatch.setattr(NoiseSelection, "pick", lambda self, x, t, c, b: picks.append((x.shape[0], int(t))) or
                        torch.full((b,), 2 * b - 1))  # always the last candidate
    assert clip(noise_candidates=3).shape == plain.shape and picks == [(3, 666)]  # 3 steps: t 999, 666, 333
    assert clip(noise_candidates=3, noise_select_timestep=1).shape == plain.shape and picks[-1] == (3, 0)
    with pytest.raises(ValueError, match="noise_candidates"):
        clip(noise_candidates=0)
    task = VfxTask()
    task.validate({"image": "examples/vfx/scene.png", "adapters": ["a"], "autoguidance": 1.0, "effect_guidance": 2.0})
    with pytest.raises(InputError) as e:
        task.validate({"image": "examples/vfx/scene.png", "adapters": ["a"], "autoguidance": 1.0,
                       "effect_guidance": 2.0, "effect_guide": "nope"})
    assert e.value.field == "effect_guide"
    with pytest.raises(InputError) as e:
        task.validate({"image": "examples/vfx/scene.png", "adapters": ["a"], "autoguidance": 1.0,
                       "effect_guidance": 0.0, "noise_candidates": 2, "effect_guide": "nope"})
    assert e.value.field == "effect_guide"
    task.validate({"image": "examples/vfx/scene.png", "adapters": ["a"], "autoguidance": 1.0,
                   "effect_guidance": 0.0, "noise_candidates": 1, "effect_guide": "nope"})  # unused: fine
