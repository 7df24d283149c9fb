"""Teacher/student models: weight inheritance (exact keys), the KD objective, generation."""

import numpy as np
import pytest
import torch

from studio.diffusion import SAMPLERS
from studio.tasks.image.model import image_dit, inherit_weights, make_student
from studio.tasks.image.pipeline import generate_arrays
from studio.tasks.image.text_cache import CaptionBank
from studio.tasks.image.train import DiffusionObjective


def fake_bank(captions=("", "a red circle", "two blue squares")):
    g = torch.Generator().manual_seed(0)
    U, T = len(captions), 6
    mask = torch.ones(U, T, dtype=torch.bool)
    mask[0, 2:] = False
    return CaptionBank(list(captions), torch.randn(U, T, 384, generator=g), mask, torch.randn(U, 384, generator=g))


def _teacher():
    torch.manual_seed(0)
    return image_dit("image-micro")


def test_inheritance_loads_everything_but_self_attention_projections():
    teacher = _teacher()
    student, report = make_student(teacher, linear_heads=2)
    depth = teacher.config.depth
    proj = {f"blocks.{i}.attn.{p}.{w}" for i in range(depth) for p in ("to_q", "to_k", "to_v", "to_out")
            for w in ("weight", "bias")}
    dwc = {f"blocks.{i}.attn.kernel.dwc.{w}" for i in range(depth) for w in ("weight", "bias")}
    assert set(report.skipped) == proj
    assert set(report.new) == proj | dwc
    assert set(report.loaded) == set(teacher.state_dict()) - proj
    assert any(k.startswith("blocks.0.cross_attn.to_q") for k in report.loaded)  # cross-attention is inherited
    s, t = student.state_dict(), teacher.state_dict()
    assert all(torch.equal(s[k], t[k]) for k in report.loaded)
    assert not torch.equal(s["blocks.0.attn.to_q.weight"], t["blocks.0.attn.to_q.weight"])
    assert student.config.attention == "linear" and teacher.config.attention == "sdpa"


def test_scratch_student_inherits_nothing():
    teacher = _teacher()
    student, report = make_student(teacher, inherit=False, seed=1)
    assert report is None
    assert not torch.equal(student.state_dict()["blocks.0.mlp.fc1.weight"], teacher.state_dict()["blocks.0.mlp.fc1.weight"])


def test_inheritance_refuses_mismatched_shapes():
    teacher = _teacher()
    other = image_dit("image-micro", attention="linear", hidden_size=32, num_heads=2)
    with pytest.raises(ValueError, match="inherit"):
        inherit_weights(other, teacher)


def _batch():
    g = torch.Generator().manual_seed(0)
    return torch.rand(4, 3, 16, 16, generator=g) * 2 - 1, torch.tensor([1, 2, 1, 2])


def test_objective_adds_kd_terms_only_with_a_teacher():
    teacher = _teacher()
    student, _ = make_student(teacher)
    bank = fake_bank()
    _, plain = DiffusionObjective(bank, 0.1)(student, _batch())
    loss, logs = DiffusionObjective(bank, 0.1, teacher=teacher, kd=__import__("studio.diffusion", fromlist=["KDWeights"]).KDWeights())(student, _batch())
    assert set(plain) == {"l_simple", "l_vlb"}
    assert set(logs) == {"l_simple", "l_vlb", "kd_eps", "kd_sigma"}
    expected = logs["l_simple"] + logs["l_vlb"] + 0.5 * logs["kd_eps"] + 0.05 * logs["kd_sigma"]
    assert loss.item() == pytest.approx(expected, rel=1e-4)


def test_a_few_kd_steps_bring_the_student_closer_to_the_teacher():
    teacher = _teacher()
    # a non-trivial teacher output: perturb its zero-initialised final layer
    with torch.no_grad():
        teacher.final_layer.linear.weight.normal_(0, 0.05)
    student, _ = make_student(teacher)
    bank = fake_bank()
    from studio.diffusion import KDWeights

    obj = DiffusionObjective(bank, 0.0, teacher=teacher, kd=KDWeights(eps=5.0, sigma=5.0))
    opt = torch.optim.Adam(student.parameters(), 3e-3)
    first = None
    for _ in range(15):
        _, logs = obj(student, _batch())
        loss, _ = obj(student, _batch())
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = first or logs["kd_eps"]
    _, last = obj(student, _batch())
    assert last["kd_eps"] < first


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_generation_is_seeded_for_every_sampler(sampler):
    model = _teacher()
    bank = fake_bank()
    a = generate_arrays(model, bank, ["a red circle"], size=16, steps=3, sampler=sampler, seed=1)
    b = generate_arrays(model, bank, ["a red circle"], size=16, steps=3, sampler=sampler, seed=1)
    c = generate_arrays(model, bank, ["a red circle"], size=16, steps=3, sampler=sampler, seed=2)
    assert a.shape == (1, 16, 16, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_guidance_and_negative_prompt_change_the_image():
    model = _teacher()
    with torch.no_grad():  # make the prompt matter: a trained-looking cross-attention and head
        for block in model.blocks:
            block.cross_attn.to_out.weight.normal_(0, 0.2)
        model.final_layer.linear.weight.normal_(0, 0.2)
    bank = fake_bank()
    base = generate_arrays(model, bank, ["a red circle"], size=16, steps=4, guidance=1.0, seed=0)
    guided = generate_arrays(model, bank, ["a red circle"], size=16, steps=4, guidance=5.0, seed=0)
    negative = generate_arrays(model, bank, ["a red circle"], size=16, steps=4, guidance=5.0, seed=0,
                               negative_prompt="two blue squares")
    assert not np.array_equal(base, guided)
    assert not np.array_equal(guided, negative)
