"""studio/diffusion: samplers recover a known distribution, guidance, callbacks, losses, KD terms."""

import pytest
import torch

from studio.diffusion import (SAMPLERS, GaussianTerms, KDWeights, add_noise, concat_cond, diffusion_loss,
                              guided_eps, hybrid_kd_terms, make_scheduler, sample, sample_timesteps,
                              timestep_weights, vlb_term)

MU, S = 0.6, 0.2  # data ~ N(MU, S²) per dimension


def oracle(scheduler, mu=MU, s=S):
    """The exact ε-predictor E[ε | x_t] for Gaussian data — a perfect model to test samplers with."""
    ac_all = scheduler.alphas_cumprod.float()

    def fn(x, t, cond):
        ac = ac_all[t.round().long()].view(-1, *[1] * (x.dim() - 1))
        return (1 - ac).sqrt() * (x - ac.sqrt() * mu) / (ac * s**2 + 1 - ac)

    return fn


@pytest.mark.parametrize("name", SAMPLERS)
def test_each_sampler_recovers_the_data_distribution(name):
    sch = make_scheduler(name)
    g = torch.Generator().manual_seed(0)
    x = sample(oracle(sch), (4000, 1), sch, steps=250, generator=g)
    assert abs(x.mean().item() - MU) < 0.01, name
    assert abs(x.std().item() - S) < 0.015, name


def test_second_order_dpm_solver_beats_first_order_ddim_at_few_steps():
    errs = {}
    for name in ("dpm++", "ddim"):
        sch = make_scheduler(name)
        x = sample(oracle(sch), (4000, 1), sch, steps=25, generator=torch.Generator().manual_seed(0))
        errs[name] = abs(x.std().item() - S)
    assert errs["dpm++"] < 0.9 * errs["ddim"]


def test_unknown_sampler_names_the_field():
    with pytest.raises(ValueError, match="sampler"):
        make_scheduler("plms")


def test_same_generator_seed_same_samples_and_callback_each_step():
    sch = make_scheduler("dpm++")
    seen = []
    a = sample(oracle(sch), (8, 1), sch, 10, torch.Generator().manual_seed(3), callback=lambda i, n, x0: seen.append((i, n, x0.shape)))
    b = sample(oracle(sch), (8, 1), sch, 10, torch.Generator().manual_seed(3))
    c = sample(oracle(sch), (8, 1), sch, 10, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert [s[0] for s in seen] == list(range(10)) and all(s[1] == 10 and s[2] == (8, 1) for s in seen)


def test_callback_can_stop_the_loop():
    sch = make_scheduler("ddim")

    def stop(i, n, x0):
        if i == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sample(oracle(sch), (2, 1), sch, 10, torch.Generator().manual_seed(0), callback=stop)


def constant_eps(calls: list[int]):
    """A model whose ε is its conditioning's constant ``c`` per sample; it records each call's batch size."""

    def fn(x, t, cond):
        calls.append(x.shape[0])
        return x * 0 + cond["c"].view(-1, 1)

    return fn


def test_guidance_combines_cond_and_uncond_in_one_batch():
    calls = []
    fn = constant_eps(calls)
    x, t = torch.zeros(3, 1), torch.zeros(3)
    cond, uncond = {"c": torch.full((3,), 2.0)}, {"c": torch.full((3,), 0.5)}
    out = guided_eps(fn, x, t, cond, uncond, guidance=4.0)
    assert calls == [6]
    assert torch.allclose(out, torch.full((3, 1), 0.5 + 4.0 * (2.0 - 0.5)))
    assert torch.allclose(guided_eps(fn, x, t, cond, uncond, guidance=1.0), torch.full((3, 1), 2.0))


def test_guidance_map_guides_each_element_by_its_own_scale():
    """A tensor guidance is a scale per element (broadcast against ε); all-ones is the plain model, once."""
    calls = []
    fn = constant_eps(calls)
    x, t = torch.zeros(2, 3), torch.zeros(2)
    cond, uncond = {"c": torch.full((2,), 2.0)}, {"c": torch.full((2,), 0.5)}
    w = torch.tensor([[1.0, 4.0, 2.0]])  # (1, 3): per column
    out = guided_eps(fn, x, t, cond, uncond, guidance=w)
    assert torch.allclose(out, (0.5 + w * 1.5).expand(2, 3))
    calls.clear()
    assert torch.allclose(guided_eps(fn, x, t, cond, uncond, guidance=torch.ones(1, 3)), torch.full((2, 3), 2.0))
    assert calls == [2]


def test_autoguidance_steps_away_from_the_guide_model():
    """ε_guide + w (ε_c − ε_guide) alone; on top of prompt guidance it adds (w − 1)(ε_c − ε_guide); w = 1 never
    calls the guide."""
    from studio.diffusion import AutoGuide

    calls, guide_calls = [], []
    fn = constant_eps(calls)
    x, t = torch.zeros(2, 1), torch.zeros(2)
    cond, uncond = {"c": torch.full((2,), 2.0)}, {"c": torch.full((2,), 0.5)}
    weak = {"c": torch.full((2,), 1.5)}
    guide = AutoGuide(lambda x, t, c: constant_eps(guide_calls)(x, t, weak), scale=3.0)
    assert torch.allclose(guided_eps(fn, x, t, cond, None, 1.0, guide), torch.full((2, 1), 1.5 + 3.0 * 0.5))
    both = guided_eps(fn, x, t, cond, uncond, 2.0, guide)
    assert torch.allclose(both, torch.full((2, 1), 0.5 + 2.0 * 1.5 + 2.0 * 0.5))
    guide_calls.clear()
    assert torch.allclose(guided_eps(fn, x, t, cond, None, 1.0, AutoGuide(guide.model_fn, 1.0)), torch.full((2, 1), 2.0))
    assert guide_calls == []
    noisy_only = AutoGuide(guide.model_fn, 3.0, min_timestep=500.0)  # a limited interval
    assert torch.allclose(guided_eps(fn, x, torch.full((2,), 200.0), cond, None, 1.0, noisy_only), torch.full((2, 1), 2.0))
    assert guide_calls == []
    assert torch.allclose(guided_eps(fn, x, torch.full((2,), 600.0), cond, None, 1.0, noisy_only),
                          torch.full((2, 1), 1.5 + 3.0 * 0.5))


def test_conditionings_with_per_sample_labels_batch_by_concatenation():
    a = {"c": torch.ones(2), "label": ["explode", "spin"], "pair": (torch.zeros(2), torch.ones(2))}
    b = {"c": torch.zeros(2), "label": ["", ""], "pair": (torch.ones(2), torch.zeros(2))}
    both = concat_cond(a, b)
    assert both["label"] == ["explode", "spin", "", ""] and both["c"].tolist() == [1, 1, 0, 0]
    assert both["pair"][0].tolist() == [0, 0, 1, 1]


def test_add_noise_matches_diffusers():
    sch = make_scheduler("ddpm")
    x0, n, t = torch.randn(5, 3, 4, 4), torch.randn(5, 3, 4, 4), torch.tensor([0, 10, 200, 700, 999])
    assert torch.allclose(add_noise(sch, x0, n, t), sch.add_noise(x0, n, t), atol=1e-5)


def test_vlb_is_zero_for_the_true_posterior_and_positive_otherwise():
    sch = make_scheduler("ddpm")
    terms = GaussianTerms.from_scheduler(sch)
    x0, noise = torch.rand(4, 3, 4, 4) * 2 - 1, torch.randn(4, 3, 4, 4)
    t = torch.tensor([5, 50, 100, 200])  # late t: β̃_t ≈ β_t, where σ hardly matters
    xt = add_noise(sch, x0, noise, t)
    v_posterior = -torch.ones_like(x0)  # v = -1 → the posterior variance β̃_t
    exact = vlb_term(terms, noise, v_posterior, x0, xt, t)
    assert torch.allclose(exact, torch.zeros(4), atol=1e-4)
    assert (vlb_term(terms, noise, torch.ones_like(x0), x0, xt, t) > 1e-5).all()
    assert (vlb_term(terms, noise + 0.5, v_posterior, x0, xt, t) > 1e-4).all()


def test_learned_sigma_loss_trains_v_only_through_the_bound():
    sch = make_scheduler("ddpm")
    terms = GaussianTerms.from_scheduler(sch)
    x0, noise, t = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4), torch.tensor([3, 400])
    xt = add_noise(sch, x0, noise, t)
    out = torch.randn(2, 6, 4, 4, requires_grad=True)
    loss, logs = diffusion_loss(out, noise, x0, xt, t, terms)
    assert set(logs) == {"l_simple", "l_vlb"}
    loss.backward()
    # the ε half gets exactly the L_simple gradient: the bound's mean uses a detached ε
    expected = 2 * (out[:, :3] - noise) / out[:, :3][0].numel() / 2
    assert torch.allclose(out.grad[:, :3], expected.detach(), atol=1e-6)
    assert out.grad[:, 3:].abs().sum() > 0


def test_hybrid_kd_terms_match_the_formula():
    teacher = torch.zeros(2, 6, 4, 4)
    student = teacher.clone()
    student[:, :3] += 1.0  # ‖ε_T − ε_S‖² = 1
    student[:, 3:] += 2.0  # ‖Σ_T − Σ_S‖² = 4
    loss, logs = hybrid_kd_terms(student, teacher, channels=3)
    assert logs == {"kd_eps": 1.0, "kd_sigma": 4.0}
    assert loss.item() == pytest.approx(0.5 * 1 + 0.05 * 4)
    loss2, _ = hybrid_kd_terms(student, teacher, channels=3, weights=KDWeights(eps=1.0, sigma=0.0))
    assert loss2.item() == pytest.approx(1.0)
    zero, _ = hybrid_kd_terms(teacher, teacher, channels=3)
    assert zero.item() == 0.0


def test_kd_gradient_does_not_reach_the_teacher():
    teacher = torch.randn(2, 6, 4, 4, requires_grad=True)
    student = torch.randn(2, 6, 4, 4, requires_grad=True)
    loss, _ = hybrid_kd_terms(student, teacher, channels=3)
    loss.backward()
    assert teacher.grad is None and student.grad is not None


@pytest.mark.parametrize("name", ["ddim", "ddpm", "dpm++"])
def test_clip_x0_keeps_samples_in_range(name):
    # data N(1.2, 0.3²) lie mostly above 1; clipping x0 to ±1 at every step keeps samples ≤ 1
    sch = make_scheduler(name, clip_x0=1.0)
    # (B, C, L): diffusers' thresholding needs a spatial axis
    x = sample(oracle(sch, 1.2, 0.3), (500, 1, 1), sch, steps=20, generator=torch.Generator().manual_seed(0))
    assert x.max().item() <= 1.0 + 1e-3
    free = make_scheduler(name)
    assert sample(oracle(free, 1.2, 0.3), (500, 1, 1), free, steps=20,
                  generator=torch.Generator().manual_seed(0)).max().item() > 1.3


def test_dpm_solver_clips_to_one_only():
    with pytest.raises(ValueError, match="clip_x0"):
        make_scheduler("dpm++", clip_x0=0.5)


@pytest.mark.parametrize("bias,lo,hi", [("later", 700, 1000), ("earlier", 0, 300)])
def test_timestep_bias_draws_its_portion_as_often_as_asked(bias, lo, hi):
    """diffusers' --timestep_bias_*: the biased 0.3 of the timesteps weighs 3x, so it is 0.9 / 1.6 of the draws."""
    w = timestep_weights(1000, bias, portion=0.3, multiplier=3.0)
    assert w.sum().item() == pytest.approx(1.0) and w[lo:hi].sum().item() == pytest.approx(0.9 / 1.6)
    t = sample_timesteps(20000, 1000, generator=torch.Generator().manual_seed(0), weights=w)
    assert t.dtype == torch.long and 0 <= t.min() and t.max() < 1000
    assert ((t >= lo) & (t < hi)).float().mean().item() == pytest.approx(0.9 / 1.6, abs=0.02)


def test_no_timestep_bias_is_uniform_and_a_bad_one_names_its_field():
    assert timestep_weights(1000) is None and timestep_weights(1000, "later", 0.3, 1.0) is None
    with pytest.raises(ValueError, match="timestep_bias_portion"):
        timestep_weights(1000, "later", 0.0, 2.0)
    with pytest.raises(ValueError, match="timestep_bias_multiplier"):
        timestep_weights(1000, "later", 0.3, -1.0)
    with pytest.raises(ValueError, match="timestep_bias"):
        timestep_weights(1000, "middle", 0.3, 2.0)


@pytest.mark.parametrize("name", SAMPLERS)
def test_denoise_from_an_init_keeps_it_as_much_as_asked(name):
    """SDEdit / img2img strength: a low ``denoise`` returns samples near their init, still from the data
    distribution; ``denoise`` 1 ignores the init (the same samples as without one). Data of unit std, so that the
    init is not drowned at once."""
    sch, s = make_scheduler(name), 1.0
    model = oracle(sch, MU, s)
    init = MU + s * torch.randn(2000, 1, generator=torch.Generator().manual_seed(1))
    run = lambda **kw: sample(model, (2000, 1), sch, steps=50, generator=torch.Generator().manual_seed(0), **kw)  # noqa: E731
    near, far = run(init=init, denoise=0.1), run(init=init, denoise=0.9)
    corr = lambda a: torch.corrcoef(torch.cat([a, init], 1).T)[0, 1].item()  # noqa: E731
    assert corr(near) > 0.85 and corr(far) < 0.3, name
    assert abs(near.mean().item() - MU) < 0.1 and abs(near.std().item() - s) < 0.1, name
    assert torch.equal(run(), run(init=init)), name
    with pytest.raises(ValueError, match="denoise"):
        sample(model, (2, 1), sch, steps=5, denoise=0.5)


def test_prompt_guidance_limited_to_the_noisiest_steps():
    """``guidance_min_timestep``: guided (cond + uncond in one batch) only at t ≥ it; below, the plain conditional
    model, without the unguided pass."""
    seen = []

    def fn(x, t, cond):
        seen.append((int(t[0]), x.shape[0]))
        return x * 0 + cond["c"].view(-1, 1)

    sch = make_scheduler("ddim")
    cond, uncond = {"c": torch.full((2,), 0.2)}, {"c": torch.full((2,), 0.1)}
    sample(fn, (2, 1), sch, 10, torch.Generator().manual_seed(0), guidance=3.0, cond=cond, uncond=uncond,
           guidance_min_timestep=700)
    assert [t for t, _ in seen] == [999, 899, 799, 699, 599, 499, 399, 299, 199, 99]
    assert [b for _, b in seen] == [4, 4, 4] + [2] * 7


def mixture(scheduler, mus=(-1.0, 1.0), s=0.2):
    """Exact ε-predictor and exact log p(class | x_t) for data ½ N(−1, s²) + ½ N(+1, s²)."""
    ac_all = scheduler.alphas_cumprod.float()

    def parts(x, t):
        ac = ac_all[t.round().long()].view(-1, *[1] * (x.dim() - 1))
        var = ac * s**2 + 1 - ac
        logp = torch.stack([-(x - ac.sqrt() * m) ** 2 / (2 * var) for m in mus])  # (K, B, …), equal weights
        eps = torch.stack([(1 - ac).sqrt() * (x - ac.sqrt() * m) / var for m in mus])
        return logp.log_softmax(0), eps

    def eps_fn(x, t, cond):
        r, eps = parts(x, t)
        return (r.exp() * eps).sum(0)

    def log_prob_fn(x, t, cond):  # log p(y | x_t) of the class in cond, summed over dimensions: (B,)
        return parts(x, t)[0][cond["y"]].flatten(1).sum(1)

    return eps_fn, log_prob_fn


def test_classifier_guidance_samples_the_asked_class():
    """With the exact noisy classifier, scale 1 samples p(x | y): every sample lands in the asked mode, where unguided
    sampling splits between both; a window that never opens changes nothing; the classifier is not differentiated
    there."""
    from studio.diffusion import ClassifierGuide

    sch = make_scheduler("ddim")
    eps_fn, log_prob_fn = mixture(sch)
    shape = (2000, 1)
    plain = sample(eps_fn, shape, sch, 50, torch.Generator().manual_seed(0), cond={"y": 1})
    assert 0.4 < (plain > 0).float().mean() < 0.6
    for y, sign in ((1, 1.0), (0, -1.0)):
        guide = ClassifierGuide(log_prob_fn, sch.alphas_cumprod, scale=1.0)
        x = sample(eps_fn, shape, sch, 50, torch.Generator().manual_seed(0), cond={"y": y}, classifier=guide)
        assert (x * sign > 0).float().mean() > 0.99
        assert abs(x.mean().item() - sign) < 0.05
    never = ClassifierGuide(log_prob_fn, sch.alphas_cumprod, scale=1.0, min_timestep=1001)
    same = sample(eps_fn, shape, sch, 50, torch.Generator().manual_seed(0), cond={"y": 1}, classifier=never)
    assert torch.equal(same, plain)


def test_classifier_guidance_pushes_only_where_its_scale_map_is_not_zero():
    from studio.diffusion import ClassifierGuide

    sch = make_scheduler("ddim")
    _, log_prob_fn = mixture(sch)
    x, t = torch.randn(2, 4), torch.full((2,), 500)
    where = torch.tensor([[1.0, 0.0, 2.0, 0.0]])  # broadcast over the batch
    full = ClassifierGuide(log_prob_fn, sch.alphas_cumprod, 1.0).eps_shift(x, t, {"y": 1})
    some = ClassifierGuide(log_prob_fn, sch.alphas_cumprod, where).eps_shift(x, t, {"y": 1})
    assert torch.allclose(some, full * where) and full.abs().min() > 0
    assert not ClassifierGuide(log_prob_fn, sch.alphas_cumprod, torch.zeros(1, 4)).active(t)


def test_noise_selection_keeps_the_candidate_the_score_prefers_and_runs_it_unchanged():
    """Each output is one of its own candidates, run exactly as it would have run alone, and the score's choice:
    with the exact noisy classifier nearly all land in the asked mode, where the candidates split; wrong setups are
    refused."""
    from studio.diffusion import NoiseSelection

    sch = make_scheduler("ddim")
    eps_fn, log_prob_fn = mixture(sch)
    n, b = 6, 500
    x_T = torch.randn(n * b, 1, generator=torch.Generator().manual_seed(0))
    every = sample(eps_fn, (n * b, 1), sch, 20, cond={"y": 1}, x_T=x_T).reshape(n, b)
    assert 0.4 < (every > 0).float().mean() < 0.6
    pick = NoiseSelection(lambda x, t, c: log_prob_fn(x, t, c), candidates=n, at_timestep=500)
    chosen = sample(eps_fn, (b, 1), sch, 20, cond={"y": 1}, x_T=x_T, selection=pick)[:, 0]
    assert (chosen > 0).float().mean() > 0.97
    assert torch.allclose((every - chosen).abs().min(0).values, torch.zeros(b), atol=1e-5)  # one of its own, unchanged
    late = NoiseSelection(pick.score_fn, candidates=n, at_timestep=0)  # never below: chosen among the finished ones
    assert (sample(eps_fn, (b, 1), sch, 20, cond={"y": 1}, x_T=x_T, selection=late) > 0).float().mean() > 0.97
    with pytest.raises(ValueError, match="selection: x_T has 500 rows"):
        sample(eps_fn, (b, 1), sch, 20, cond={"y": 1}, x_T=x_T[:b], selection=pick)
    dpm = make_scheduler("dpm++")  # a multistep sampler: its history keeps the chosen rows too
    every = sample(eps_fn, (n * b, 1), dpm, 20, cond={"y": 1}, x_T=x_T).reshape(n, b)
    chosen = sample(eps_fn, (b, 1), dpm, 20, cond={"y": 1}, x_T=x_T, selection=pick)[:, 0]
    assert torch.allclose((every - chosen).abs().min(0).values, torch.zeros(b), atol=1e-5)
