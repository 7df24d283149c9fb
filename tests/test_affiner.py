"""Diffscaler affiners: identity at init, per-sample routing, save/load, bad files."""

from __future__ import annotations

import pytest
import torch

from studio.lora.affiner import (
    AffinerConfig,
    AffinerFileError,
    AffinerLinear,
    add_affiner,
    load_affiner,
    num_affiner_parameters,
    save_affiner,
)
from studio.lora.identity import AdapterBaseMismatch, weights_hash

NUM_CLASSES = 5


def tiny_dit(seed: int = 0):
    """A small class-conditional core DiT with its adaLN and final layers made non-zero."""
    from studio.core.dit import DiT

    torch.manual_seed(seed)
    model = DiT(sample_size=8, patch_size=2, in_channels=3, hidden_size=32, depth=2, num_heads=2,
                num_classes=NUM_CLASSES, learn_sigma=False)
    with torch.no_grad():  # adaLN-Zero starts at zero: perturb so every adapted layer matters
        for n, p in model.named_parameters():
            if "adaLN_modulation" in n or "final" in n:
                p.normal_(0, 0.05)
    return model.eval()


def _inputs(batch: int = 4, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 3, 8, 8, generator=g)
    t = torch.randint(0, 1000, (batch,), generator=g)
    return x, t


def _perturb(tuner, name: str, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in tuner.trainable_parameters(name).values():
            p.add_(0.2 * torch.randn(p.shape, generator=g))


def test_identity_at_init_on_every_target():
    model = tiny_dit()
    x, t = _inputs()
    null = torch.full((4,), NUM_CLASSES)
    y = torch.tensor([0, 1, 2, 3])
    with torch.no_grad():
        ref_null, ref_y = model(x, t, y=null), model(x, t, y=y)
    tuner = add_affiner(model, "outline", AffinerConfig(rank=4, targets=["attention", "mlp", "adaln", "final"]))
    adapted = [m for m in model.modules() if isinstance(m, AffinerLinear)]
    assert len(adapted) >= 2 * (4 + 2 + 1) + 1  # q, k, v, out, fc1, fc2, adaLN per block + final
    with torch.no_grad():
        assert torch.equal(model(x, t, y=null), ref_null)
        assert torch.equal(model(x, t, y=y), ref_y)
    assert num_affiner_parameters(tuner, "outline") > 0


def test_new_label_embeddings_start_from_null_class():
    model = tiny_dit()
    x, t = _inputs()
    with torch.no_grad():
        ref = model(x, t, y=torch.full((4,), NUM_CLASSES))
    add_affiner(model, "pixel", AffinerConfig(rank=2, num_labels=3))
    with torch.no_grad():  # every new class starts as the base's unconditional model
        out = model(x, t, y=torch.tensor([0, 1, 2, NUM_CLASSES]))
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-6)


def test_only_affiners_train():
    model = tiny_dit()
    tuner = add_affiner(model, "a", AffinerConfig(rank=2, num_labels=2))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == set(tuner.trainable_parameters("a"))
    assert all(".affiner_" in n for n in trainable)


def test_mixed_batch_equals_each_dataset_alone():
    model = tiny_dit()
    tuner = add_affiner(model, "a", AffinerConfig(rank=3, num_labels=3))
    tuner.add("b", AffinerConfig(rank=3, num_labels=2))
    tuner.add("c", AffinerConfig(rank=3, num_labels=4, targets=["attention", "label"]))
    for i, n in enumerate("abc"):
        _perturb(tuner, n, seed=i)
    x, t = _inputs(batch=6)
    names = ["a", "b", "c", "b", "a", "c"]
    y = torch.tensor([0, 1, 3, NUM_CLASSES, 2, 0])
    with torch.no_grad(), tuner.route(names):
        mixed = model(x, t, y=y)
    for n in "abc":
        idx = [i for i, m in enumerate(names) if m == n]
        tuner.set_adapter(n)
        with torch.no_grad():
            alone = model(x[idx], t[idx], y=y[idx])
        torch.testing.assert_close(mixed[idx], alone, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(mixed[0], mixed[1])  # datasets really differ


def test_routing_rejects_unknown_dataset_and_wrong_length():
    model = tiny_dit()
    tuner = add_affiner(model, "a", AffinerConfig(rank=2))
    x, t = _inputs(batch=2)
    with pytest.raises(KeyError, match="datasets"):
        with tuner.route(["a", "zzz"]):
            pass
    with pytest.raises(ValueError, match="routing"):
        with tuner.route(["a"]), torch.no_grad():
            model(x, t, y=torch.tensor([0, 0]))


def test_save_load_round_trip_and_wrong_base(tmp_path):
    model = tiny_dit()
    base_hash = weights_hash(model)
    tuner = add_affiner(model, "a", AffinerConfig(rank=2, num_labels=2))
    _perturb(tuner, "a", seed=3)
    x, t = _inputs()
    y = torch.tensor([0, 1, NUM_CLASSES, 1])
    with torch.no_grad():
        ref = model(x, t, y=y)
    record = {"base_model_id": "tiny", "base_model_hash": base_hash, "dataset": "a", "steps": 1}
    save_affiner(tuner, "a", tmp_path / "diffscaler-a", record, card="# a\n", dtype=torch.float32)

    fresh = tiny_dit()
    load_affiner(fresh, tmp_path / "diffscaler-a", name="a", base_hash=weights_hash(fresh))
    with torch.no_grad():
        torch.testing.assert_close(fresh(x, t, y=y), ref, rtol=0, atol=0)

    other = tiny_dit(seed=7)
    with pytest.raises(AdapterBaseMismatch, match="tiny"):
        load_affiner(other, tmp_path / "diffscaler-a", base_hash=weights_hash(other))


def test_load_rejects_lora_folder_and_missing(tmp_path):
    from studio.lora.files import AdapterNotFound, write_adapter_dir

    write_adapter_dir(tmp_path / "some-lora", {"w": torch.zeros(2)}, {"peft_type": "LORA"},
                      {"adapter_type": "lora"}, "# lora\n")
    with pytest.raises(AffinerFileError, match="adapters"):
        load_affiner(tiny_dit(), tmp_path / "some-lora")
    with pytest.raises(AdapterNotFound):
        load_affiner(tiny_dit(), tmp_path / "nope")


def test_bad_config_names_the_field():
    with pytest.raises(ValueError, match="targets"):
        AffinerConfig(targets=["attention", "everything"])
    with pytest.raises(ValueError, match="rank"):
        AffinerConfig(rank=-1)


def test_affiners_and_peft_lora_share_a_model():
    from studio.lora import adapter_names, add_lora

    model = tiny_dit()
    add_lora(model, "style", rank=2, targets=["to_q", "to_v"])
    tuner = add_affiner(model, "a", AffinerConfig(rank=2, targets=["mlp", "label"], num_labels=2))
    assert adapter_names(model) == ["style"]  # studio.lora's bookkeeping is untouched
    assert tuner.names() == ["a"]
    x, t = _inputs()
    with torch.no_grad():
        assert model(x, t, y=torch.tensor([0, 1, 0, 1])).shape == (4, 3, 8, 8)
