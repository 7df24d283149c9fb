"""Open-VFX-mini: determinism, annotations, stillness outside the interval, the interval detector
on real procedural clips, and the Open-VFX folder loader."""

import numpy as np
import pytest

from studio.tasks.vfx.data import ClipConfig, OpenVfxFolder, clip_for, export_open_vfx, fit_square
from studio.tasks.vfx.effects import EFFECT_NAMES, EFFECTS, MOTIONS
from studio.tasks.vfx.metrics import (DetectorSpec, detect_interval, effect_region, frame_error, mask_precision, motion_after,
                                      odd_even_motion, odd_even_ratio, score_clip,
                                      temporal_iou)


def test_at_least_ten_effects_and_generic_motions():
    assert len(EFFECTS) >= 10
    assert {"explode", "crumble", "melt", "inflate", "deflate", "squish", "levitate", "dissolve", "spin", "tada",
            "transform"} <= set(EFFECTS)
    assert "still" in MOTIONS and len(MOTIONS) >= 5


def test_clips_are_deterministic():
    a, b = clip_for(5, 42, EFFECT_NAMES), clip_for(5, 42, EFFECT_NAMES)
    assert np.array_equal(a.frames, b.frames) and np.array_equal(a.mask, b.mask)
    assert (a.prompt, a.start, a.end) == (b.prompt, b.start, b.end)
    c = clip_for(5, 43, EFFECT_NAMES)
    assert not np.array_equal(a.frames, c.frames)


@pytest.mark.parametrize("effect", EFFECT_NAMES)
def test_annotations_and_stillness(effect):
    cfg = ClipConfig()
    c = clip_for(EFFECT_NAMES.index(effect), 7, EFFECT_NAMES, cfg)
    assert c.effect == effect and effect_verb_in(c.prompt, effect)
    assert c.frames.shape == (cfg.frames, cfg.size, cfg.size, 3) and c.frames.dtype == np.uint8
    assert c.mask.shape == (cfg.frames, cfg.size, cfg.size) and c.mask[0].any()
    assert 1 <= c.start < c.end <= cfg.frames - 1 and c.end - c.start >= cfg.min_duration
    assert c.start_s == c.start / 8 and c.end_s == c.end / 8
    # still before the start and after the end, moving at every frame in between
    for t in range(1, c.start + 1):
        assert np.array_equal(c.frames[t], c.frames[0])
    for t in range(c.end + 1, cfg.frames):
        assert np.array_equal(c.frames[t], c.frames[c.end])
    for t in range(c.start + 1, c.end + 1):
        assert not np.array_equal(c.frames[t], c.frames[t - 1]), f"frame {t} does not move"
    # the other objects never change (explode's burnt-out fragments may fly across them); motion
    # outside the effect region is only soft edges and fading fragments (a few % of the energy)
    if effect != "explode":
        assert np.abs(np.diff(c.frames.astype(int), axis=0))[:, c.others & ~effect_region(c.mask, 1)].max(initial=0) <= 2
    assert mask_precision(c.frames, effect_region(c.mask), c.others)[0] > 0.95


def effect_verb_in(prompt: str, effect: str) -> bool:
    return EFFECTS[effect].verb in prompt


def test_detector_recovers_annotated_intervals_on_procedural_clips():
    hits, n = 0, 0
    for i in range(4 * len(EFFECT_NAMES)):
        c = clip_for(i, 123, EFFECT_NAMES)
        found = detect_interval(c.frames, effect_region(c.mask))
        hits += found == (c.start, c.end)
        n += 1
        s = score_clip(c.frames, c.mask, c.others, c.start, c.end)
        assert s.t_iou == pytest.approx(1.0) and s.frame_error == 0
        assert s.mask_precision > 0.97 and s.leakage < 0.02
    assert hits == n


def test_detector_ignores_flicker_below_the_noise_floor_and_finds_nothing_in_still_clips():
    c = clip_for(0, 5, ("still",), table=MOTIONS)
    assert detect_interval(c.frames, effect_region(c.mask)) is None
    rng = np.random.default_rng(0)
    noisy = np.clip(c.frames.astype(int) + rng.integers(-3, 4, c.frames.shape), 0, 255).astype(np.uint8)
    moving = clip_for(1, 5, EFFECT_NAMES)  # crumble
    noisy_moving = np.clip(moving.frames.astype(int) + rng.integers(-3, 4, c.frames.shape), 0, 255).astype(np.uint8)
    found = detect_interval(noisy_moving, effect_region(moving.mask))
    assert found is not None and frame_error(found, (moving.start, moving.end)) <= 1.0


def test_pixel_floor_reads_sampling_noise_as_still_and_keeps_real_motion():
    # a generator leaves a few grey levels of noise in every pixel; after the true end that noise must
    # not read as the effect going on, nor, summed over the frame, as motion outside the mask
    rng = np.random.default_rng(1)
    for i in range(len(EFFECT_NAMES)):
        c = clip_for(i, 7, EFFECT_NAMES)
        noisy = np.clip(c.frames.astype(int) + rng.integers(-1, 2, c.frames.shape), 0, 255).astype(np.uint8)
        region = effect_region(c.mask)
        assert detect_interval(noisy, region) == (c.start, c.end)
        assert mask_precision(noisy, region)[0] > 0.97
        raw = DetectorSpec(pixel_floor=0.0)
        assert detect_interval(noisy, region, raw) != (c.start, c.end) or mask_precision(noisy, region, None, 0.0)[0] < 0.9
    # a change above the floor is motion, however few pixels make it
    frames = np.zeros((6, 8, 8, 3), np.uint8)
    frames[3:, 0, 0] = 4
    one = np.zeros((8, 8), bool)
    one[0, 0] = True
    assert detect_interval(frames, one) == (2, 3)


def test_timing_diagnostics_on_procedural_clips_and_on_token_jumps():
    clips = [clip_for(i, 123, EFFECT_NAMES) for i in range(2 * len(EFFECT_NAMES))]
    scores = [score_clip(c.frames, c.mask, c.others, c.start, c.end) for c in clips]
    # the truth holds still after the end, and real motion does not favour odd or even transitions
    assert all(s.after_end == 0.0 for s in scores if s.after_end is not None)
    assert any(s.after_end is not None for s in scores)
    assert 0.7 < odd_even_ratio([s.odd_even for s in scores]) < 1.4
    # a clip that only changes every second frame (between temporal tokens of 2) and keeps changing
    frames = np.zeros((16, 8, 8, 3), np.uint8)
    for t in range(16):
        frames[t, :4, :4] = 40 * (t // 2 % 2)
    region = np.zeros((8, 8), bool)
    region[:4, :4] = True
    odd, even = odd_even_motion(frames, region)
    assert even == 0 and odd > 0
    assert motion_after(frames, region, 10) > 0 and motion_after(frames, region, 15) is None


def test_interval_metrics():
    assert temporal_iou((2, 6), (2, 6)) == 1.0
    assert temporal_iou((2, 6), (4, 8)) == pytest.approx(2 / 6)
    assert temporal_iou(None, (4, 8)) == 0.0
    assert frame_error((3, 9), (2, 6)) == 2.0
    frames = np.zeros((4, 8, 8, 3), np.uint8)
    frames[2:, :2, :2] = 200
    region = np.zeros((8, 8), bool)
    region[:2, :2] = True
    assert mask_precision(frames, region)[0] == pytest.approx(1.0)
    assert mask_precision(frames, ~region)[0] == pytest.approx(0.0)


def test_open_vfx_folder_round_trip(tmp_path):
    clips = [clip_for(i, 3, EFFECT_NAMES) for i in range(3)]
    root = export_open_vfx(clips, tmp_path / "openvfx")
    ds = OpenVfxFolder(root)
    assert len(ds) == 3
    for orig, back in zip(clips, (ds[i] for i in range(3))):
        assert back.frames.shape == orig.frames.shape
        assert (back.start, back.end, back.effect, back.prompt) == (orig.start, orig.end, orig.effect, orig.prompt)
        assert np.abs(back.frames.astype(int) - orig.frames).mean() < 12  # H.264 at 32 px
        assert (back.mask == orig.mask).mean() > 0.97


def test_open_vfx_folder_rejects_bad_annotations(tmp_path):
    with pytest.raises(FileNotFoundError, match="annotations.json"):
        OpenVfxFolder(tmp_path)
    (tmp_path / "annotations.json").write_text('[{"path": "a.mp4", "text": "x"}]')
    with pytest.raises(ValueError, match="missing end, mask, start"):
        OpenVfxFolder(tmp_path)


def test_fit_square_any_size():
    img = np.zeros((48, 100, 3), np.uint8)
    img[:, 50:] = 255
    out = fit_square(img, 32)
    assert out.shape == (32, 32, 3)
