"""LoRA + the shared Trainer on a tiny core DiT: inject on the stable names, train, save, reload, merge, unload."""

from __future__ import annotations

import copy

import pytest
import torch

from studio import lora
from studio.train import TrainConfig, Trainer

core_dit = pytest.importorskip("studio.core.dit")
core_ckpt = pytest.importorskip("studio.core.checkpoint")


def tiny_dit(seed: int = 0):
    torch.manual_seed(seed)
    model = core_dit.DiT(sample_size=8, patch_size=2, in_channels=4, hidden_size=32, depth=2, num_heads=2,
                         learn_sigma=False, num_classes=3, class_dropout_prob=0.0)
    # stand in for a trained base: a fresh DiT zero-initialises adaLN and the output layer, which
    # would make every output (and every LoRA gradient) zero
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1 and not p.any():
                torch.nn.init.kaiming_uniform_(p, a=5**0.5)  # nn.Linear's default init
    return lora.set_model_id(model, "tiny-dit")


def low_rank_teacher(base, seed: int = 3):
    """The base with a rank-2 change in its value/output projections: a target a LoRA can reach."""
    teacher = copy.deepcopy(base)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, mod in teacher.named_modules():
            if name.endswith(("to_v", "to_out")):
                d_out, d_in = mod.weight.shape
                mod.weight += 0.3 * torch.randn(d_out, 2, generator=g) @ torch.randn(2, d_in, generator=g) / d_out**0.5
    return teacher


class Distill(torch.utils.data.Dataset):
    """(x_t, t, y) → the teacher's output; a different seed gives held-out inputs."""

    def __init__(self, teacher, n: int, seed: int):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 4, 8, 8, generator=g)
        self.t = torch.randint(0, 1000, (n,), generator=g)
        self.y = torch.randint(0, 3, (n,), generator=g)
        with torch.no_grad():
            self.target = teacher(self.x, self.t, self.y)  # (n, 4, 8, 8)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"x": self.x[i], "t": self.t[i], "y": self.y[i], "target": self.target[i]}


def distill_objective(model, batch):
    return (model(batch["x"], batch["t"], batch["y"]) - batch["target"]).square().mean()


def held_out_loss(model, data: Distill) -> float:
    with torch.no_grad():
        return (model(data.x, data.t, data.y) - data.target).square().mean().item()


def test_dit_lora_train_save_reload_merge(tmp_path):
    model = tiny_dit()
    x = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    t, y = torch.tensor([10, 500]), torch.tensor([0, 2])
    base_out = model(x, t, y)
    core_ckpt.save_model(model, tmp_path / "base")

    lora.add_lora(model, "colours", rank=4)
    assert lora.assert_unchanged(lambda *a: base_out, model, x, t, y) == 0.0
    n_targets = sum(1 for n, _ in model.named_modules() if n.endswith(("to_q", "to_k", "to_v", "to_out")))
    assert len(lora.lora_parameters(model, "colours")) == 2 * n_targets

    teacher = low_rank_teacher(tiny_dit())
    held_out = Distill(teacher, 16, seed=99)
    before = held_out_loss(model, held_out)
    cfg = TrainConfig(output_dir=tmp_path / "run", max_steps=20, batch_size=8, optimizer={"lr": 1.5e-2},
                      log={"every": 5, "progress_bar": False})
    result = Trainer(model, distill_objective, Distill(teacher, 48, seed=0), cfg).train()
    model.eval()
    after = held_out_loss(model, held_out)
    print(f"held-out distillation MSE {before:.3e} -> {after:.3e}")
    assert after < 0.5 * before  # the adapter learned the low-rank change
    tuned = model(x, t, y)
    assert not torch.allclose(tuned, base_out)
    lora.save_adapter(model, "colours", tmp_path / "adapters" / "colours",
                      {"dataset": "Distill(48)", "steps": result.step})

    fresh = lora.set_model_id(core_ckpt.load_model(core_dit.DiT, tmp_path / "base"), "tiny-dit")
    lora.load_adapter(fresh, "colours", root=tmp_path / "adapters")
    assert torch.allclose(fresh(x, t, y), tuned, atol=1e-6)
    lora.set_adapters(fresh, ["colours"], [0.5])
    half = fresh(x, t, y)
    lora.merge_adapters(fresh)
    assert torch.allclose(fresh(x, t, y), half, atol=1e-5)

    lora.unload_adapters(model)
    assert torch.equal(model(x, t, y), base_out)

    other = tiny_dit(seed=1)
    with pytest.raises(lora.AdapterBaseMismatch, match="tiny-dit"):
        lora.load_adapter(other, tmp_path / "adapters" / "colours")
