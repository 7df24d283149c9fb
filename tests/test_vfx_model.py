"""Video DiT + controls: shapes for both attention layouts, exact zero-init identities of the mask
branch, the timestamp tokens and the rejected active-vector alternative, plug-and-play without a
mask, and the controllable adapter's save/load round trip."""

from types import SimpleNamespace

import pytest
import torch

from studio.lora import add_lora
from studio.tasks.vfx.controls import (ActiveVectorSpec, ControlSpec, MaskBranchSpec,
                                       TEMPORAL, TimestampTokensSpec, VfxControls, hold_frames,
                                       mix_frames)
from studio.tasks.vfx.model import VideoDiT
from studio.tasks.vfx.objective import VfxModel, decode, encode

TINY = dict(sample_frames=8, sample_size=16, patch_size=(2, 8, 8), hidden_size=32, depth=2, num_heads=2)


def tiny(attention="full", seed=0, preconditioning="edm") -> VideoDiT:
    torch.manual_seed(seed)
    dit = VideoDiT(attention=attention, preconditioning=preconditioning, **TINY)
    # a trained base has non-zero adaLN / cross-attention / final layer; make this one non-trivial too
    with torch.no_grad():
        for name, p in dit.named_parameters():
            if p.abs().sum() == 0:
                p.normal_(0, 0.05)
    return dit.eval()


def inputs(B=2, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, 3, 8, 16, 16, generator=g)
    cond = {"ref": torch.rand(B, 3, 16, 16, generator=g) * 2 - 1,
            "context": torch.randn(B, 5, 384, generator=g), "context_mask": torch.ones(B, 5, dtype=torch.bool),
            "pooled": torch.randn(B, 384, generator=g),
            "mask": (torch.rand(B, 1, 8, 16, 16, generator=g) > 0.5).float(),
            "start_s": torch.tensor([0.25, 0.5]), "end_s": torch.tensor([0.75, 0.875])}
    return x, torch.tensor([10, 500]), cond


@pytest.mark.parametrize("attention", ["full", "factorised"])
def test_shapes(attention):
    dit = tiny(attention)
    x, t, cond = inputs()
    out = VfxModel(dit)(x, t, cond)
    assert out.shape == x.shape and torch.isfinite(out).all()


@pytest.mark.parametrize("preconditioning", ["edm", "gated", "x"])
def test_preconditioning_shapes_and_saved_choice(preconditioning, tmp_path):
    dit = tiny(preconditioning=preconditioning)
    x, t, cond = inputs()
    out = VfxModel(dit)(x, t, cond)
    assert out.shape == x.shape and torch.isfinite(out).all()
    dit.register_to_config(frame_noise_correlation=0.5)
    dit.save_pretrained(str(tmp_path))
    loaded = VfxModel(VideoDiT.from_pretrained(str(tmp_path)))
    assert loaded.preconditioning == preconditioning and loaded.noise_correlation == 0.5


def test_gated_skip_shuts_out_the_noisy_input_where_the_gate_closes():
    """A closed gate leaves ẑ0 independent of x_t (the still pixels' noise cannot pass); an open one
    is the EDM skip. An x-prediction model never passes x_t through the skip."""
    dit = tiny(preconditioning="gated")
    x, t, cond = inputs()
    x2 = x + torch.randn_like(x)
    model = VfxModel(dit)
    with torch.no_grad():
        dit.final_layer.linear.bias.view(-1, 4)[:, 3] = -1e4  # gate logit per pixel (last channel)
        closed = model(x, t, cond) - model(x2, t, cond)
        dit.final_layer.linear.bias.view(-1, 4)[:, 3] = 1e4
        opened = model(x, t, cond) - model(x2, t, cond)
    # closed: only F's dependence on x_t remains; open: the EDM skip c_skip·(x − x2) is added to it
    ac = model.alphas_cumprod[t].view(-1, 1, 1, 1, 1)
    s2 = model.sigma_data**2
    c_skip = ac.sqrt() * s2 / (ac * s2 + 1 - ac)
    torch.testing.assert_close(opened - closed, c_skip * (x - x2), atol=1e-4, rtol=1e-4)
    # skip_gate reads that gate per pixel; only a gated base has one
    with torch.no_grad():
        dit.final_layer.linear.bias.view(-1, 4)[:, 3] = -1e4
        assert model.skip_gate(x, t, cond).shape == (x.shape[0], *x.shape[2:])
        assert model.skip_gate(x, t, cond).max() == 0.0
    assert VfxModel(tiny(preconditioning="edm")).skip_gate(x, t, cond) is None


def test_gated_mean_can_shut_out_each_frames_own_noise_and_keep_the_shared():
    """Shutting the per-frame gate (mean gate open) removes exactly c_skip·(x_t − x̄_t) from ẑ0: noise
    that differs between frames no longer reaches ẑ0 through the skip (only through F)."""
    dit = tiny(preconditioning="gated_mean")
    x, t, cond = inputs()
    model = VfxModel(dit)
    gates = dit.final_layer.linear.bias.view(-1, 5)  # per pixel: 3 colours, the mean gate, the own gate
    with torch.no_grad():
        gates[:, 3:] = 1e4
        both = model(x, t, cond)
        gates[:, 4] = -1e4
        shared = model(x, t, cond)
    ac = model.alphas_cumprod[t].view(-1, 1, 1, 1, 1)
    s2 = model.sigma_data**2
    c_skip = ac.sqrt() * s2 / (ac * s2 + 1 - ac)
    torch.testing.assert_close(both - shared, c_skip * (x - x.mean(2, keepdim=True)), atol=1e-4, rtol=1e-4)
    assert model.skip_gate(x, t, cond).min() == 0.0  # the gate on each frame's own part, as shut above


def test_skip_frame_mix_is_an_exact_identity_at_init_and_learns():
    dit = tiny(preconditioning="gated")
    x, t, cond = inputs()
    controls = VfxControls(dit, ControlSpec(TimestampTokensSpec(), MaskBranchSpec(2), skip_mix=True))
    model = VfxModel(dit, controls)
    with torch.no_grad():
        plain = VfxModel(dit)(x, t, {k: v for k, v in cond.items() if k not in ("mask", "start_s", "end_s")})
        assert torch.equal(model(x, t, cond), plain)
    model(x, t, cond).pow(2).mean().backward()
    assert controls.skip_mix.query_strength.linear.weight.grad.abs().sum() > 0  # the strength moves first
    assert ControlSpec.from_dict(controls.spec.to_dict()) == controls.spec
    assert ControlSpec.from_dict({"temporal": "tokens", "mask_blocks": 2}).skip_mix is False  # older adapters


def test_mix_frames_can_make_the_frames_after_the_end_share_one_skip():
    """Weights that average frames 5… among themselves (and keep frames 0–4 their own) at full
    strength make those frames' skip inputs identical; strength 0 returns x exactly."""
    x = torch.randn(2, 3, 8, 4, 4)
    w = torch.eye(8)
    w[5:, 5:] = 1 / 3
    weights = w[None, :, :, None, None].expand(2, 8, 8, 4, 4)
    mixed = mix_frames(x, weights, torch.ones(2, 8, 4, 4))
    assert torch.equal(mixed[:, :, :5], x[:, :, :5])
    torch.testing.assert_close(mixed[:, :, 5:], x[:, :, 5:].mean(2, keepdim=True).expand(-1, -1, 3, -1, -1))
    assert torch.equal(mix_frames(x, weights, torch.zeros(2, 8, 4, 4)), x)


def test_frame_hold_is_an_exact_identity_at_init_and_starts_holding_still_frames():
    """At init h = 0 (the plain adapter's prediction exactly); on a clip whose frames 4… hold still, one
    gradient step on the frame loss raises h there (keeping the previous frame averages their errors)."""
    dit = tiny(preconditioning="gated")
    x, t, cond = inputs()
    controls = VfxControls(dit, ControlSpec(TimestampTokensSpec(), MaskBranchSpec(2), hold=True))
    model = VfxModel(dit, controls)
    plain = VfxModel(dit, VfxControls(dit, ControlSpec(TimestampTokensSpec(), MaskBranchSpec(2))))
    plain.controls.load_state_dict(controls.state_dict(), strict=False)
    with torch.no_grad():
        assert torch.equal(model(x, t, cond), plain(x, t, cond))
        assert model.frame_hold(x, t, cond).abs().max() == 0
    z0 = torch.zeros(2, 3, 8, 16, 16)
    z0[:, :, :4] = torch.randn(2, 3, 4, 16, 16)
    z0[:, :, 4:] = z0[:, :, 3:4]  # still from frame 4 on
    opt = torch.optim.SGD(controls.hold.parameters(), lr=0.5)
    for _ in range(3):
        opt.zero_grad()
        (model(x, t, cond) - z0).pow(2).mean().backward()
        opt.step()
    with torch.no_grad():
        assert model.frame_hold(x, t, cond)[:, 5:].mean() > 0.01
    assert ControlSpec.from_dict(controls.spec.to_dict()) == controls.spec
    assert ControlSpec.from_dict({"temporal": "tokens", "mask_blocks": 2}).hold is False  # older adapters


def test_effect_label_is_an_exact_identity_at_init_and_then_names_the_effect():
    """At init every row of the effect table is 0 (the plain adapter exactly); trained, two effect names give
    two predictions, and a name outside the vocabulary (or none) reads the null row, like the empty one."""
    dit = tiny()
    x, t, cond = inputs()
    controls = VfxControls(dit, ControlSpec(TimestampTokensSpec(), MaskBranchSpec(2), effects=("explode", "spin")))
    model = VfxModel(dit, controls)
    plain = VfxModel(dit, VfxControls(dit, ControlSpec(TimestampTokensSpec(), MaskBranchSpec(2))))
    plain.controls.load_state_dict(controls.state_dict(), strict=False)
    named = lambda *names: {**cond, "effect": list(names)}  # noqa: E731
    with torch.no_grad():
        assert torch.equal(model(x, t, named("explode", "spin")), plain(x, t, cond))
        controls.effect.table.weight.normal_(0, 0.5)
        explode, spin = model(x, t, named("explode", "explode")), model(x, t, named("spin", "spin"))
        assert (explode - spin).abs().mean() > 1e-3
        assert torch.equal(model(x, t, named("melt", "")), model(x, t, named("", "")))
        assert torch.equal(model(x, t, cond), model(x, t, named("", "")))  # no names given: the null row
    assert ControlSpec.from_dict(controls.spec.to_dict()) == controls.spec
    assert ControlSpec.from_dict({"temporal": "tokens", "mask_blocks": 2}).effects == ()  # older adapters


class Spy(torch.nn.Module):
    """A stand-in denoiser for objective tests: ``look(zt, t, cond)`` sees each call; it predicts 0."""

    def __init__(self, look):
        super().__init__()
        self.look = look
        self.p = torch.nn.Parameter(torch.zeros(1))

    def forward(self, zt, t, cond):
        self.look(zt, t, cond)
        return zt * self.p


def test_caption_dropout_drops_the_effect_name_with_the_prompt():
    """The unguided branch guidance steers from has neither the prompt nor the effect's name."""
    from studio.diffusion import scheduler_from_spec
    from studio.tasks.vfx.objective import NOISE, Objective

    seen = []
    batch = {"frames": torch.zeros(64, 4, 8, 8, 3, dtype=torch.uint8), "ref_mask": torch.zeros(64, 8, 8, dtype=torch.bool),
             "prompt": ["the red square explodes"] * 64, "effect_name": ["explode"] * 64,
             "start_s": torch.full((64,), 0.1), "end_s": torch.full((64,), 0.4)}
    torch.manual_seed(0)
    Objective(scheduler_from_spec("ddpm", NOISE), Text(), use_mask=False, caption_dropout=0.5)(
        Spy(lambda zt, t, cond: seen.append(cond["effect"])), batch)
    assert 10 < seen[0].count("") < 54 and set(seen[0]) == {"", "explode"}
    assert batch["effect_name"] == ["explode"] * 64  # the caller's batch is left as it was


def test_objective_draws_its_timesteps_with_the_bias_it_is_given():
    """``timestep_weights`` reach the training loss: the spy sees only the timesteps the weights allow."""
    from studio.diffusion import scheduler_from_spec, timestep_weights
    from studio.tasks.vfx.objective import NOISE, Objective

    seen = []
    batch = {"frames": torch.zeros(512, 4, 8, 8, 3, dtype=torch.uint8), "ref_mask": torch.zeros(512, 8, 8, dtype=torch.bool),
             "prompt": ["the red square explodes"] * 512, "start_s": torch.full((512,), 0.1),
             "end_s": torch.full((512,), 0.4)}
    sched = scheduler_from_spec("ddpm", NOISE)
    torch.manual_seed(0)
    spy = Spy(lambda zt, t, cond: seen.append(t))
    Objective(sched, Text(), use_mask=False, use_time=False)(spy, batch)
    Objective(sched, Text(), use_mask=False, use_time=False,
              timestep_weights=timestep_weights(1000, "later", 0.3, 3.0))(spy, batch)
    uniform, biased = ((t >= 700).float().mean().item() for t in seen)
    assert abs(uniform - 0.3) < 0.07 and abs(biased - 0.9 / 1.6) < 0.07


def test_hold_frames_keeps_the_previous_frame_where_h_is_one():
    z = torch.randn(2, 3, 6, 4, 4)
    h = torch.zeros(2, 6, 4, 4)
    h[:, 3:] = 1.0
    y = hold_frames(z, h)
    assert torch.equal(y[:, :, :3], z[:, :, :3])
    assert torch.equal(y[:, :, 3:], z[:, :, 2:3].expand(-1, -1, 3, -1, -1))  # frames 3… all keep frame 2
    half = hold_frames(z, torch.full((2, 6, 4, 4), 0.5))
    torch.testing.assert_close(half[:, :, 1], 0.5 * z[:, :, 0] + 0.5 * z[:, :, 1])
    assert torch.equal(hold_frames(z, torch.zeros(2, 6, 4, 4)), z)


def test_unknown_preconditioning_is_named():
    with pytest.raises(ValueError, match="preconditioning"):
        VideoDiT(preconditioning="v", **TINY)


def test_factorised_temporal_blocks_only_mix_along_time():
    dit = tiny("factorised")
    block = dit.blocks[1]  # temporal
    assert not dit.is_spatial(1) and block.cross_attn is None
    x, t, cond = inputs()
    h = torch.randn(2, 4 * 2 * 2, 32, requires_grad=True)  # grid (4, 2, 2)
    c = torch.randn(2, 32)
    out = dit._run_block(1, block, h, c, (4, 2, 2), None, None)
    out[0, 0].sum().backward()  # token (t=0, h=0, w=0)
    touched = h.grad[0].abs().sum(-1).view(4, 2, 2) > 0
    assert touched[:, 0, 0].all() and touched.sum() == 4  # its own column of time, nothing else


@pytest.mark.parametrize("temporal", list(TEMPORAL.values()), ids=list(TEMPORAL))
def test_controls_are_an_exact_identity_at_init(temporal):
    dit = tiny()
    x, t, cond = inputs()
    with torch.no_grad():
        base = VfxModel(dit)(x, t, {k: v for k, v in cond.items() if k not in ("mask", "start_s", "end_s")})
        controlled = VfxModel(dit, VfxControls(dit, ControlSpec(temporal, MaskBranchSpec(2))))(x, t, cond)
    assert torch.equal(base, controlled)


def test_timestamp_tokens_are_zero_at_init_and_learn_time():
    dit = tiny()
    controls = VfxControls(dit, ControlSpec(TimestampTokensSpec(), None))
    tok = controls.timestamps(torch.tensor([0.0, 1.0]), torch.tensor([0.5, 1.5]))
    assert tok.shape == (2, 2, 384) and torch.equal(tok, torch.zeros_like(tok))
    with torch.no_grad():
        controls.timestamps.start.weight.normal_()
        controls.timestamps.end.weight.normal_()
    x, t, cond = inputs()
    model = VfxModel(dit, controls)
    a = model(x, t, cond)
    b = model(x, t, {**cond, "start_s": cond["start_s"] + 0.5})
    assert not torch.allclose(a, b)


def test_fourier_timestamp_features_tell_late_ends_apart():
    """The paper's feature is log(t + t0) alone (one input to W, so old adapters load unchanged);
    ``tokens_fourier`` adds sin/cos(2πt/P), which separate 1.0 / 1.5 / 1.875 s far more than log t."""
    paper, fourier = TEMPORAL["tokens"], TEMPORAL["tokens_fourier"]
    t = torch.tensor([1.0, 1.5, 1.875])
    assert paper.features(t).shape == (3, 1)
    torch.testing.assert_close(paper.features(t)[:, 0], torch.log(t + paper.offset_s))
    f = fourier.features(t)
    assert f.shape == (3, 1 + 2 * len(fourier.periods_s))
    assert torch.equal(f[:, :1], paper.features(t))
    assert (f[1] - f[2]).norm() > 5 * (paper.features(t)[1] - paper.features(t)[2]).norm()
    for name, spec in TEMPORAL.items():  # the saved name brings back the same spec
        assert ControlSpec.from_dict(ControlSpec(spec, None).to_dict()).temporal == spec, name
    assert VfxControls(tiny(), ControlSpec(fourier, None)).timestamps.start.weight.shape == (384, 13)


def test_without_a_mask_the_model_is_exactly_the_plain_lora():
    dit = tiny()
    add_lora(dit, "fx", rank=4)
    controls = VfxControls(dit, ControlSpec(TimestampTokensSpec(), MaskBranchSpec(2)))
    with torch.no_grad():  # as after training: LoRA and mask branch are non-zero
        for n, p in list(dit.named_parameters()) + list(controls.named_parameters()):
            if "lora_B" in n or "mask_branch.out" in n:
                p.normal_(0, 0.1)
    x, t, cond = inputs()
    no_mask = {k: v for k, v in cond.items() if k != "mask"}
    plain = VfxModel(dit, VfxControls(dit, ControlSpec(TimestampTokensSpec(), None)))
    plain.controls.timestamps.load_state_dict(controls.timestamps.state_dict())
    with torch.no_grad():
        assert torch.equal(VfxModel(dit, controls)(x, t, no_mask), plain(x, t, no_mask))
        assert not torch.allclose(VfxModel(dit, controls)(x, t, cond), plain(x, t, no_mask))


def test_controllable_adapter_round_trip(tmp_path):
    from studio.lora import load_adapter
    from studio.tasks.vfx.pipeline import load_base, load_controls, save_controllable_adapter

    dit = tiny()
    dit.save_pretrained(str(tmp_path / "base"))
    base = load_base(tmp_path / "base")
    add_lora(base, "fx", rank=4)
    controls = VfxControls(base, ControlSpec(ActiveVectorSpec(), MaskBranchSpec(1), skip_mix=True, hold=True,
                                             effects=("explode", "spin")))
    with torch.no_grad():
        for n, p in list(base.named_parameters()) + list(controls.named_parameters()):
            if any(k in n for k in ("lora_B", "mask_branch.out", "active", "skip_mix", "hold", "effect")):
                p.normal_(0, 0.1)
    x, t, cond = inputs()
    cond["effect"] = ["spin", "explode"]
    want = VfxModel(base, controls)(x, t, cond)
    save_controllable_adapter(base, controls, "fx", tmp_path / "fx", {"steps": 0})
    fresh = load_base(tmp_path / "base")
    load_adapter(fresh, tmp_path / "fx", adapter_name="fx")
    got = VfxModel(fresh, load_controls(fresh, tmp_path / "fx"))(x, t, cond)
    torch.testing.assert_close(got, want, atol=0.05, rtol=0.05)  # saved in bf16


def test_residual_latent_round_trip():
    video = torch.rand(2, 3, 8, 16, 16) * 2 - 1
    ref = video[:, :, 0]
    z = encode(video, ref)
    assert torch.equal(z[:, :, 0], torch.zeros_like(z[:, :, 0]))
    torch.testing.assert_close(decode(z, ref), video)


class Text:
    """A text encoder stand-in: two zero tokens per prompt."""

    def encode(self, prompts):
        n = len(prompts)
        return SimpleNamespace(tokens=torch.zeros(n, 2, 384), mask=torch.ones(n, 2, dtype=torch.bool),
                               pooled=torch.zeros(n, 384))


def test_mask_weighted_loss_counts_errors_inside_the_mask_more():
    """λ weights the error inside the object's mask by 1 + λ (normalised to mean 1), from the
    annotation, whether or not the model is given the mask."""
    from studio.diffusion import scheduler_from_spec
    from studio.tasks.vfx.objective import NOISE, Objective

    frames = torch.zeros(1, 4, 8, 8, 3, dtype=torch.uint8)
    frames[:, 1:, :4] = 255  # the top half changes after frame 0: z0 ≠ 0 there
    mask = torch.zeros(1, 8, 8, dtype=torch.bool)
    batch = {"frames": frames, "ref_mask": mask, "prompt": ["x"], "start_s": torch.tensor([0.1]),
             "end_s": torch.tensor([0.4])}
    class Zero(torch.nn.Module):  # "nothing changes": the error sits only in the top half
        def __init__(self):
            super().__init__()
            self.p = torch.nn.Parameter(torch.zeros(1))

        def forward(self, zt, t, cond):
            return torch.zeros_like(zt)

    zero = Zero()
    sched = scheduler_from_spec("ddpm", NOISE)
    plain = Objective(sched, Text(), use_mask=False, use_time=False)(zero, batch)[0]
    off_mask = Objective(sched, Text(), use_mask=False, use_time=False, mask_weight=9.0)(zero, batch)[0]
    mask[:, :4] = True  # the changing half is the object
    on_mask = Objective(sched, Text(), use_mask=False, use_time=False, mask_weight=9.0)(zero, batch)[0]
    assert torch.isclose(off_mask, plain)  # an empty mask weighs nothing differently
    assert on_mask > 1.5 * plain  # the error sits in the mask, which now weighs 10×: (10·½)/(5.5) = 0.91 of it vs ½


def test_motion_loss_sees_flicker_but_not_a_steady_offset():
    """μ·(Δẑ0 − Δz0)²: a prediction off by the same amount in every frame has no motion error; one
    that flickers between frames has, though both make the same frame error."""
    from studio.diffusion import scheduler_from_spec
    from studio.tasks.vfx.objective import NOISE, Objective

    class Offset(torch.nn.Module):  # the truth is a still clip (z0 = 0); predict ±0.5 per frame
        def __init__(self, signs):
            super().__init__()
            self.p = torch.nn.Parameter(torch.zeros(1))
            self.signs = torch.tensor(signs, dtype=torch.float32).view(1, 1, -1, 1, 1)

        def forward(self, zt, t, cond):
            return 0.5 * self.signs.expand_as(zt)

    batch = {"frames": torch.zeros(1, 4, 8, 8, 3, dtype=torch.uint8), "ref_mask": torch.zeros(1, 8, 8, dtype=torch.bool),
             "prompt": ["x"], "start_s": torch.tensor([0.1]), "end_s": torch.tensor([0.4])}
    objective = Objective(scheduler_from_spec("ddpm", NOISE), Text(), use_mask=False, use_time=False, motion_weight=1.0)
    steady_loss, steady = objective(Offset([1, 1, 1, 1]), batch)
    flicker_loss, flicker = objective(Offset([1, -1, 1, -1]), batch)
    assert steady["frame_loss"] == pytest.approx(0.25) and flicker["frame_loss"] == pytest.approx(0.25)
    assert steady["motion_loss"] == 0.0 and flicker["motion_loss"] == pytest.approx(1.0)  # |Δ| = 1 at every step
    assert float(flicker_loss) == pytest.approx(1.25) and float(steady_loss) == pytest.approx(0.25)


def test_hold_loss_teaches_the_hold_the_true_clips_still_map():
    """ν·(a − s)²: s = 1 on transitions where the true clip does not change, 0 where it does; the loss is
    zero for a hold that equals s and reaches the hold head's weights."""
    from studio.diffusion import scheduler_from_spec
    from studio.tasks.vfx.objective import NOISE, Objective, still_map

    z0 = torch.zeros(1, 3, 5, 4, 4)
    z0[:, :, 2:, :2] = 1.0  # the top half changes at frame 2, then holds
    s = still_map(z0)
    assert s.shape == (1, 1, 4, 4, 4)
    assert s[0, 0, 1, :2].eq(0).all() and s[0, 0, [0, 2, 3], :2].eq(1).all() and s[0, 0, :, 2:].eq(1).all()

    dit = tiny(preconditioning="gated")
    model = VfxModel(dit, VfxControls(dit, ControlSpec(TimestampTokensSpec(), MaskBranchSpec(2), hold=True)))
    frames = torch.zeros(1, 8, 16, 16, 3, dtype=torch.uint8)
    frames[:, 3:, :8] = 200  # changes at frame 3, still before and after
    batch = {"frames": frames, "ref_mask": torch.zeros(1, 16, 16, dtype=torch.bool), "prompt": ["x"],
             "start_s": torch.tensor([0.25]), "end_s": torch.tensor([0.5])}
    objective = Objective(scheduler_from_spec("ddpm", NOISE), Text(), hold_weight=1.0)
    loss, logs = objective(model, batch)
    assert logs["hold_loss"] > 0.5  # a = 0 where most transitions are still
    loss.backward()
    assert model.controls.hold.head.linear.weight.grad.abs().sum() > 0


def test_after_end_weight_counts_the_object_after_its_end_more():
    """``after_end_weight`` weighs the object's frames from the annotated end on (end_s · fps, rounded)."""
    from studio.diffusion import scheduler_from_spec
    from studio.tasks.vfx.objective import NOISE, Objective, after_end

    assert after_end(torch.tensor([0.25]), 4, 8.0).flatten().tolist() == [0, 0, 1, 1]

    class Zero(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.p = torch.nn.Parameter(torch.zeros(1))

        def forward(self, zt, t, cond):
            return torch.zeros_like(zt)

    def loss(changed_frame: int, weight: float) -> float:
        frames = torch.zeros(1, 4, 8, 8, 3, dtype=torch.uint8)
        frames[:, changed_frame, :4] = 255  # one frame of the object differs from the reference
        batch = {"frames": frames, "ref_mask": (torch.arange(8) < 4)[None, :, None].expand(1, 8, 8), "prompt": ["x"],
                 "start_s": torch.tensor([0.1]), "end_s": torch.tensor([0.25])}  # end frame 2
        sched = scheduler_from_spec("ddpm", NOISE)
        return float(Objective(sched, Text(), use_mask=False, use_time=False, after_end_weight=weight)(Zero(), batch)[0])

    assert loss(1, 0.0) == pytest.approx(loss(3, 0.0))
    assert loss(3, 30.0) > 5 * loss(1, 30.0)  # after the end the same error weighs 31× vs 1×


def test_frame_phase_flags_each_token_with_its_frames_started_and_ended():
    from studio.tasks.vfx.controls import FramePhaseEmbed

    dit = tiny()
    embed = FramePhaseEmbed(dit)
    pt = dit.patch[0]
    with torch.no_grad():  # read the flags straight out: channel j = flag j of the token
        embed.proj.weight.zero_()
        embed.proj.weight[: 2 * pt].copy_(torch.eye(2 * pt))
    T, H, W = TINY["sample_frames"], TINY["sample_size"], TINY["sample_size"]
    out = embed(torch.tensor([0.25]), torch.tensor([0.5]), 8.0, (1, 3, T, H, W))  # start frame 2, end frame 4
    per_token = out[0, :: (H // dit.patch[1]) * (W // dit.patch[2]), : 2 * pt]  # first spatial position of each frame group
    flags = per_token.reshape(-1, 2)  # (frames, [started, ended])
    frames = torch.arange(T).float()
    assert torch.equal(flags[:, 0], (frames >= 2).float()) and torch.equal(flags[:, 1], (frames >= 4).float())


def test_the_ideal_skip_mix_shares_one_input_from_the_requested_end_on():
    """``scripts/vfx_skip_mix.py``'s hand-written bound: frames from the end frame on (0.875 s = frame 7 at
    8 fps; 0.5 s = frame 4) take their mean, earlier frames keep their own input."""
    from scripts.vfx_skip_mix import after_end_mean

    x = torch.randn(2, 3, 8, 4, 4)
    weights, strength = after_end_mean(x, torch.tensor([0.875, 0.5]), fps=8.0)
    torch.testing.assert_close(weights.sum(2), torch.ones(2, 8, 4, 4))
    mixed = mix_frames(x, weights, strength)
    for b, end in enumerate((7, 4)):
        assert torch.equal(mixed[b, :, :end], x[b, :, :end])
        torch.testing.assert_close(mixed[b, :, end:], x[b, :, end:].mean(1, keepdim=True).expand(-1, 8 - end, -1, -1))


def test_the_ideal_frame_hold_freezes_the_prediction_from_the_requested_end_on():
    """``scripts/vfx_skip_mix.py``'s other bound: every frame after the end frame (7 and 4) equals it."""
    from scripts.vfx_skip_mix import after_end_hold

    z = torch.randn(2, 3, 8, 4, 4)
    held = hold_frames(z, after_end_hold(torch.tensor([0.875, 0.5]), tuple(z.shape), fps=8.0))
    for b, end in enumerate((7, 4)):
        assert torch.equal(held[b, :, :end + 1], z[b, :, :end + 1])
        assert torch.equal(held[b, :, end:], z[b, :, end:end + 1].expand(-1, 8 - end, -1, -1))
