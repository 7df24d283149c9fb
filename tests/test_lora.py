"""LoRA lifecycle on a tiny model with the core's stable projection names (to_q/to_k/to_v/to_out)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from torch import nn

from studio import lora
from studio.lora import files


class TinyAttention(nn.Module):
    def __init__(self, dim: int = 16):
        super().__init__()
        self.to_q, self.to_k, self.to_v, self.to_out = (nn.Linear(dim, dim) for _ in range(4))

    def forward(self, x):  # x: (B, T, D)
        q, k, v = self.to_q(x), self.to_k(x), self.to_v(x)
        w = torch.softmax(q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5, dim=-1)  # (B, T, T)
        return x + self.to_out(w @ v)


class TinyNet(nn.Module):
    def __init__(self, dim: int = 16, depth: int = 2):
        super().__init__()
        self.blocks = nn.ModuleList(TinyAttention(dim) for _ in range(depth))
        self.head = nn.Linear(dim, dim)

    def forward(self, x):
        for b in self.blocks:
            x = b(x)
        return self.head(x)


def make_base(seed: int = 0, model_id: str = "tiny-base") -> TinyNet:
    torch.manual_seed(seed)
    return lora.set_model_id(TinyNet(), model_id)


def perturb(model: nn.Module, name: str, seed: int = 1, scale: float = 0.3) -> None:
    """Give an adapter non-zero weights, as training would."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in lora.lora_parameters(model, name):
            p.copy_(torch.randn(p.shape, generator=g) * scale)


@pytest.fixture
def x():
    return torch.randn(2, 5, 16, generator=torch.Generator().manual_seed(42))


def test_add_is_identity_and_only_adapter_trains(x):
    m = make_base()
    y0 = m(x)
    lora.add_lora(m, "style", rank=4)
    assert torch.equal(m(x), y0)  # B = 0 at init
    trainable = [n for n, p in m.named_parameters() if p.requires_grad]
    assert trainable and all(".lora_" in n and ".style." in n for n in trainable)
    assert len(trainable) == 2 * 4 * 2  # A and B × 4 projections × 2 blocks; head is not a target
    assert lora.active_adapters(m) == {"style": 1.0}


def test_unload_restores_base_exactly(x):
    m = make_base()
    m.head.weight.requires_grad_(False)
    y0 = m(x)
    h0 = lora.weights_hash(m)
    lora.add_lora(m, "a", rank=4)
    perturb(m, "a")
    assert not torch.allclose(m(x), y0)
    assert lora.weights_hash(m) == h0  # hash ignores adapter tensors
    lora.unload_adapters(m)
    assert torch.equal(m(x), y0)
    assert type(m.blocks[0].to_q) is nn.Linear
    assert not m.head.weight.requires_grad and m.blocks[0].to_q.weight.requires_grad  # trainability restored
    assert lora.adapter_names(m) == []


def test_save_load_round_trip(tmp_path, x):
    m = make_base()
    lora.add_lora(m, "style", rank=4, alpha=8)
    perturb(m, "style")
    y = m(x)
    out = lora.save_adapter(m, "style", tmp_path / "style",
                            {"dataset": "shapes-v1", "steps": 120, "training_config": {"lr": 1e-3}})
    assert sorted(p.name for p in out.iterdir()) == ["ADAPTER_CARD.md", "adapter_config.json",
                                                    "adapter_model.safetensors"]
    meta = files.read_metadata(out)
    for key in files.METADATA_KEYS:
        assert key in meta, key
    assert meta["base_model_id"] == "tiny-base" and meta["rank"] == "4" and meta["alpha"] == "8"
    assert json.loads(meta["targets"]) == ["to_k", "to_out", "to_q", "to_v"]
    assert meta["steps"] == "120" and meta["dataset"] == "shapes-v1"
    assert json.loads(meta["training_config"]) == {"lr": 0.001}
    assert "shapes-v1" in (out / "ADAPTER_CARD.md").read_text()

    fresh = make_base()
    name = lora.load_adapter(fresh, out)
    assert name == "style"
    assert torch.equal(fresh(x), y)
    assert all(not p.requires_grad for p in lora.lora_parameters(fresh, "style"))  # loaded for inference


def test_saved_folder_is_peft_layout(tmp_path, x):
    from peft import PeftModel

    m = make_base()
    lora.add_lora(m, "style", rank=4)
    perturb(m, "style")
    y = m(x)
    lora.save_adapter(m, "style", tmp_path / "style")
    peft_model = PeftModel.from_pretrained(make_base(), str(tmp_path / "style"))
    assert torch.allclose(peft_model(x), y, atol=1e-6)


def test_wrong_base_raises_naming_both(tmp_path):
    m = make_base(seed=0, model_id="base-one")
    lora.add_lora(m, "style", rank=2)
    lora.save_adapter(m, "style", tmp_path / "style")
    other = make_base(seed=1, model_id="base-two")
    with pytest.raises(lora.AdapterBaseMismatch) as e:
        lora.load_adapter(other, tmp_path / "style")
    assert "base-one" in str(e.value) and "base-two" in str(e.value)
    assert lora.adapter_names(other) == []  # nothing half-injected
    # same weights but renamed: the hash check passes, the id check does not
    renamed = make_base(seed=0, model_id="base-renamed")
    with pytest.raises(lora.AdapterBaseMismatch):
        lora.load_adapter(renamed, tmp_path / "style", check_base="id")
    assert lora.load_adapter(renamed, tmp_path / "style") == "style"


def test_weights_scale_the_delta(x):
    # a single targeted Linear: the adapter's contribution is linear in its weight
    m = make_base()
    y0 = m(x)
    lora.add_lora(m, "a", rank=4, targets=["head"])
    perturb(m, "a")
    d1 = m(x) - y0
    lora.set_adapters(m, ["a"], [2.5])
    assert torch.allclose(m(x) - y0, 2.5 * d1, atol=1e-5)
    lora.set_adapters(m, ["a"], [0.0])
    assert torch.equal(m(x), y0)
    lora.set_adapters(m, [])
    assert torch.equal(m(x), y0)
    assert lora.active_adapters(m) == {}


def test_stack_two_adapters_and_merge(x):
    m = make_base()
    y0 = m(x)
    lora.add_lora(m, "a", rank=4, targets=["head"])
    lora.add_lora(m, "b", rank=2, targets=["head", "to_v"])
    perturb(m, "a", seed=1)
    perturb(m, "b", seed=2)
    assert lora.active_adapters(m) == {"a": 1.0, "b": 1.0}
    lora.set_adapters(m, ["b"], [1.0])
    yb = m(x)
    assert not torch.allclose(yb, y0)
    lora.set_adapters(m, ["a", "b"], [1.0, 1.0])
    da = m(x) - yb
    lora.set_adapters(m, ["a", "b"], [0.5, 1.0])
    assert lora.active_adapters(m) == {"a": 0.5, "b": 1.0}
    stacked = m(x)
    # "a" only touches the last Linear, so its delta (given b) scales linearly with its weight
    assert torch.allclose(stacked, yb + 0.5 * da, atol=1e-5)
    h_before = lora.weights_hash(m)
    lora.merge_adapters(m)
    assert lora.adapter_names(m) == [] and type(m.head) is nn.Linear
    assert torch.allclose(m(x), stacked, atol=1e-5)
    assert lora.weights_hash(m) != h_before  # merged weights are a new base


def test_add_keeps_other_adapters_frozen_and_delete():
    m = make_base()
    lora.add_lora(m, "a", rank=2)
    lora.add_lora(m, "b", rank=2)
    assert all(not p.requires_grad for p in lora.lora_parameters(m, "a"))
    assert all(p.requires_grad for p in lora.lora_parameters(m, "b"))
    lora.set_adapters(m, ["a", "b"], [1.0, 0.3])
    assert all(p.requires_grad for p in lora.lora_parameters(m, "b"))  # set_adapters keeps trainability
    lora.delete_adapter(m, "a")
    assert lora.adapter_names(m) == ["b"] and lora.active_adapters(m) == {"b": pytest.approx(0.3)}
    with pytest.raises(KeyError, match="unknown adapter 'zzz'"):
        lora.set_adapters(m, ["zzz"])


def test_list_and_load_by_name(tmp_path, monkeypatch, x):
    monkeypatch.setenv("STUDIO_ADAPTERS", str(tmp_path))
    m = make_base()
    for name, rank in (("alpha", 2), ("beta", 4)):
        lora.add_lora(m, name, rank=rank)
        perturb(m, name)
        lora.save_adapter(m, name, tmp_path / name, {"steps": 7})
    (tmp_path / "not-an-adapter").mkdir()
    infos = lora.list_adapters()
    assert [i.name for i in infos] == ["alpha", "beta"]
    assert [i.rank for i in infos] == [2, 4]
    assert all(i.type == "lora" and i.base == "tiny-base" and i.size_bytes > 0 for i in infos)
    assert infos[0].metadata["steps"] == "7"

    fresh = make_base()
    lora.load_adapter(fresh, "alpha", weight=0.5)
    lora.load_adapter(fresh, "beta")
    assert lora.active_adapters(fresh) == {"alpha": 0.5, "beta": 1.0}
    lora.set_adapters(m, ["alpha", "beta"], [0.5, 1.0])
    assert torch.allclose(fresh(x), m(x), atol=1e-6)
    with pytest.raises(lora.AdapterNotFound, match="alpha, beta"):
        lora.load_adapter(fresh, "gamma")


def test_bad_arguments():
    m = make_base()
    with pytest.raises(ValueError, match="targets"):
        lora.add_lora(m, "x", targets=["no_such_layer"])
    with pytest.raises(ValueError, match="rank"):
        lora.add_lora(m, "x", rank=0)
    lora.add_lora(m, "x")
    with pytest.raises(ValueError, match="already loaded"):
        lora.add_lora(m, "x")


def test_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(Exception):
        files.write_adapter_dir(tmp_path / "broken", {"w": "not a tensor"}, {}, {}, "card")
    assert list(tmp_path.iterdir()) == []


def test_zero_init_branch_is_identity_then_learns(x):
    base = make_base()

    class WithBranch(nn.Module):
        def __init__(self, base):
            super().__init__()
            self.base = base
            self.branch = nn.Sequential(nn.Linear(16, 32), nn.GELU(), lora.ZeroInitProjection(32, 16))
            self.gate = lora.ZeroGate(16)
            self.extra = nn.Linear(16, 16)

        def forward(self, x):
            return self.base(x) + self.branch(x) + self.gate(self.extra(x))

    ext = WithBranch(base)
    assert lora.assert_unchanged(base, ext, x) == 0.0
    # the branch must be able to learn: one SGD step moves the output away from the base
    opt = torch.optim.SGD([p for n, p in ext.named_parameters() if not n.startswith("base.")], lr=0.1)
    ext(x).square().mean().backward()
    opt.step()
    with pytest.raises(AssertionError, match="changes the base output"):
        lora.assert_unchanged(base, ext, x)


def test_import_is_lazy():
    code = "import sys, studio.lora; print('peft' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
