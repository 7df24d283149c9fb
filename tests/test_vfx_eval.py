"""The evaluation's scoring and report on real procedural clips (the upper-bound row)."""

from pathlib import Path

import numpy as np
import torch

from studio.tasks.vfx.classifier import EffectClassifier, features
from studio.tasks.vfx.evaluate import MAIN, REAL, held_out, score, write_doc


def test_real_clips_score_perfectly_on_the_control_metrics(tmp_path):
    clips = held_out(1)
    torch.manual_seed(0)
    r = score(clips, [c.frames for c in clips], EffectClassifier().eval())
    assert r["t_iou"] == 1.0 and r["frame_error"] == 0.0 and r["detected_share"] == 1.0
    assert r["mask_precision"] > 0.97 and r["leakage"] < 0.02
    assert 0.0 <= r["effect_accuracy"] <= 1.0 and set(r["per_effect_accuracy"]) == {c.effect for c in clips}
    confusion = np.array(r["confusion"])  # rows: requested, columns: named; its diagonal is the accuracy
    assert confusion.sum() == len(clips) and confusion.sum(1).tolist() == [1] * len(clips)
    assert np.trace(confusion) / len(clips) == r["effect_accuracy"]
    # a clip where nothing happens is scored as a miss, not as a success
    still = [np.repeat(c.frames[:1], len(c.frames), 0) for c in clips]
    r0 = score(clips, still, EffectClassifier().eval())
    assert r0["t_iou"] == 0.0 and r0["detected_share"] == 0.0
    assert r["without_pixel_floor"]["t_iou"] == 1.0  # real motion reads the same without the noise floor
    result = {"t_iou": 1.0, "frame_error": 0.0, "frame_error_pct": 0.0, "seconds_error": 0.0, "mask_precision": 1.0,
              "leakage": 0.0, "effect_accuracy": 1.0, "clips": len(clips), "steps": 1, "quick": True, "seconds": 0,
              "sampling": "1 DDIM steps, no guidance",
              "without_pixel_floor": {"t_iou": 0.5, "frame_error_pct": 20.0, "mask_precision": 0.7},
              "goals_met": {"t_iou": True, "frame_error_pct": True, "mask_precision": True, "effect_accuracy": True}}
    doc = tmp_path / "vfx.md"
    write_doc(doc, result, {"real": r, "still": r0}, {}, Path("sheet.png"))
    text = doc.read_text()
    assert "| real |" in text and "| still | 0.000 |" in text and "≥ 0.90" in text
    assert "| T-IoU | 1.000 | ≥ 0.90 | yes | 0.84 | 0.500 |" in text  # the uncalibrated reading stays visible
    # the timing breakdown: true clips are neither early nor late and hold still after the end
    write_doc(doc, result, {REAL: r, MAIN.label: r0}, {}, Path("sheet.png"))
    timing = doc.read_text().split("### Where the frame error comes from")[1]
    assert f"| {REAL} | +0.00 | +0.00 | 0.00 |" in timing and f"| {MAIN.label} | – | – |" in timing
    named = doc.read_text().split("### What the classifier names each effect")[1]
    assert all(f"| {c.effect} |" in named for c in clips)


def test_cards_say_how_their_clips_were_sampled(tmp_path, monkeypatch):
    """The shipped adapter is measured as the CLI samples it (its default guidance); the card says so, and an
    unguided row says that instead."""
    from studio.tasks.vfx.evaluate import CARD_MARK, Variant, annotate_cards
    from studio.tasks.vfx.task import DEFAULT_GUIDANCE, VfxTask

    assert MAIN.guidance == DEFAULT_GUIDANCE == VfxTask.Inputs.model_fields["guidance"].default
    assert MAIN.guidance_scope == VfxTask.Inputs.model_fields["guidance_scope"].default
    monkeypatch.setenv("STUDIO_ADAPTERS", str(tmp_path))
    r = {"t_iou": 0.5, "frame_error": 1.0, "frame_error_pct": 6.25, "seconds_error": 0.125, "mask_precision": 0.9,
         "leakage": 0.01, "effect_accuracy": 0.25}
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "adapter_model.safetensors").write_bytes(b"")  # found by name; never read here
        (tmp_path / name / "ADAPTER_CARD.md").write_text(f"# Adapter `{name}`\n\n{CARD_MARK} (stale)\n\n- old\n")
    guided, plain = Variant("a", ("a",), guidance=2.0, guidance_scope="mask"), Variant("b", ("b",))
    annotate_cards({"a": (r, guided), "b": (r, plain)}, {}, 44, 10)
    a, b = ((tmp_path / n / "ADAPTER_CARD.md").read_text() for n in ("a", "b"))
    assert "(44 held-out clips, all effects; 10 DDIM steps, guidance 2 on the mask)" in a and "- old" not in a
    assert "10 DDIM steps, no guidance)" in b and "- T-IoU 0.500" in b and a.count(CARD_MARK) == 1


def test_a_miss_is_never_rounded_onto_the_goal():
    from studio.tasks.vfx.evaluate import _shown

    assert _shown("t_iou", 0.8998) == "0.8998" and _shown("t_iou", 0.9004) == "0.900"
    assert _shown("t_iou", 0.8712) == "0.871" and _shown("effect_accuracy", 0.8496) == "0.8496"


def test_classifier_features_shape():
    x = features(torch.zeros(2, 16, 32, 32, 3, dtype=torch.uint8), torch.ones(2, 32, 32, dtype=torch.bool))
    assert x.shape == (2, 7, 16, 32, 32)


def test_drift_ratio_tells_a_drift_from_flicker():
    from studio.tasks.vfx.metrics import change_after, drift_ratio

    region = np.ones((8, 8), bool)
    ramp = np.linspace(0, 1, 12, dtype=np.float32)[:, None, None, None] * np.ones((12, 8, 8, 3), np.float32)
    still = np.repeat(ramp[:1], 12, 0)
    flicker = 0.5 + 0.1 * np.random.default_rng(0).standard_normal((12, 8, 8, 3)).astype(np.float32)
    assert abs(drift_ratio([change_after(ramp, region, 4)]) - 2.0) < 1e-4  # steady drift: twice the change
    assert abs(drift_ratio([change_after(flicker, region, 4)]) - 1.0) < 0.1  # independent errors: the same
    assert np.isnan(drift_ratio([change_after(still, region, 4)]))  # the truth: nothing changes
    assert change_after(ramp, region, 10) is None and np.isnan(drift_ratio([]))


def test_held_out_can_give_a_training_seed_or_another_size():
    from studio.tasks.vfx.data import ClipDataset
    from studio.tasks.vfx.effects import EFFECT_NAMES

    train = ClipDataset(tuple(EFFECT_NAMES), len(EFFECT_NAMES), seed=1)
    same = held_out(1, seed=1)
    assert all(np.array_equal(a.frames, b.frames) for a, b in zip(train.clips, same))  # the fit check's clips
    small, eval_clips = held_out(1, size=16), held_out(1)
    assert small[0].frames.shape[1:3] == (16, 16) and eval_clips[0].frames.shape[1:3] == (32, 32)
    assert [(c.effect, c.start, c.end) for c in small] == [(c.effect, c.start, c.end) for c in eval_clips]
    assert not np.array_equal(eval_clips[0].frames, same[0].frames)


def test_every_guidance_is_named_and_the_sweep_reads_all_its_fields():
    """The eval's words and the sampling sweep's settings carry effect guidance alongside the other two."""
    from scripts.vfx_sampling_steps import parse_settings, setting
    from studio.tasks.vfx.evaluate import Variant, guidance_words
    from studio.tasks.vfx.task import DEFAULT_EFFECT_GUIDANCE, VfxTask

    assert MAIN.effect_guidance == DEFAULT_EFFECT_GUIDANCE == VfxTask.Inputs.model_fields["effect_guidance"].default
    v = Variant("", (), guidance=3.0, guidance_scope="mask", guidance_min_timestep=800, autoguidance=2.5,
                autoguidance_min_timestep=500, effect_guidance=2.0, effect_guidance_min_timestep=500)
    assert guidance_words(v) == ("autoguidance 2.5 by vfx-mixed-4000 at t ≥ 500 + guidance 3 on the mask at t ≥ 800"
                                 " + effect guidance 2 at t ≥ 500")
    (full,) = parse_settings("10:3:mask:2.5:500:800:2:500")
    assert full == (10, 3.0, "mask", 2.5, 500.0, 800.0, 2.0, 500.0)
    row = dict(steps=10, guidance=3.0, scope="mask", autoguidance=1.0, g_min_t=800.0, effect_guidance=2.0, e_min_t=500.0)
    assert setting(row) == "10 steps, guidance 3 on the mask at t ≥ 800, effect guidance 2 at t ≥ 500"
