"""Diffscaler task: datasets, fine-tune → adapter → mixed-batch grid, bad input by field."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from studio.tasks.base import InputError, RunContext
from studio.tasks.diffscaler import data as ddata


# ------------------------------------------------------------------------------------------ data


def test_procedural_datasets_are_deterministic_and_distinct():
    means = {}
    for name in ddata.PROCEDURAL:
        a = ddata.procedural(name, 12, "train")
        b = ddata.procedural(name, 12, "train")
        h = ddata.procedural(name, 12, "heldout")
        assert a.images.shape == (12, 32, 32, 3) and a.images.dtype == np.uint8
        assert np.array_equal(a.images, b.images) and np.array_equal(a.labels, b.labels)
        assert not np.array_equal(a.images, h.images)  # disjoint splits
        assert set(a.labels.tolist()) == set(range(len(a.classes)))  # balanced classes
        means[name] = a.images.reshape(-1, 3).mean(0)
    # clearly different distributions: mean colours far apart
    names = list(means)
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            assert np.abs(means[names[i]] - means[names[j]]).max() > 20


def test_folder_conventions(tmp_path):
    import cv2

    img = np.zeros((40, 50, 3), np.uint8)
    for cls in ("cat", "dog"):
        (tmp_path / "by_class" / cls).mkdir(parents=True)
        for i in range(3):
            cv2.imwrite(str(tmp_path / "by_class" / cls / f"{i}.png"), img)
    s = ddata.folder(tmp_path / "by_class")
    assert s.classes == ("cat", "dog") and s.images.shape == (6, 32, 32, 3)
    flat = tmp_path / "flat"
    flat.mkdir()
    for i, cls in enumerate(["a", "b", "a"]):
        cv2.imwrite(str(flat / f"{i}.png"), img)
        (flat / f"{i}.txt").write_text(cls + "\n")
    s = ddata.folder(flat)
    assert s.classes == ("a", "b") and s.labels.tolist() == [0, 1, 0]
    (flat / "3.png").write_bytes(cv2.imencode(".png", img)[1].tobytes())  # one without a label
    with pytest.raises(ValueError, match="datasets"):
        ddata.folder(flat)
    with pytest.raises(KeyError, match="datasets"):
        ddata.load("no-such-dataset", 4)


# ------------------------------------------------------------------------------ end to end (tiny)


@pytest.fixture(scope="module")
def studio_home(tmp_path_factory):
    """A tiny class-conditional base + two briefly trained affiners in a temporary asset library."""
    with pytest.MonkeyPatch.context() as mp:
        tmp_path = tmp_path_factory.mktemp("studio_home")
        mp.setenv("STUDIO_MODELS", str(tmp_path / "models"))
        mp.setenv("STUDIO_ADAPTERS", str(tmp_path / "adapters"))
        _build_home(tmp_path)
        yield tmp_path


def _build_home(tmp_path):
    from studio.core.dit import DiT
    from studio.tasks.diffscaler.adapters import card, record, save
    from studio.tasks.diffscaler.model import load_base
    from studio.tasks.diffscaler.train import FinetuneSpec, MethodSpec, attach, fit

    torch.manual_seed(0)
    DiT(sample_size=16, patch_size=4, in_channels=3, hidden_size=32, depth=1, num_heads=2, num_classes=7,
        learn_sigma=True).save_pretrained(str(tmp_path / "models" / "tiny-base"), safe_serialization=True)
    for d in ("outline", "pixel"):
        net = load_base("tiny-base")
        train = ddata.load(d, 16, "train", size=16)
        method = MethodSpec(rank=2, lr=1e-2)
        attach(net, d, method, len(train.classes))
        stats = fit(net, d, FinetuneSpec(d, method, steps=2, batch_size=4), train)
        rec = record(net, d, stats)
        save(net, d, tmp_path / "adapters" / f"diffscaler-{d}", rec, card(d, rec, stats))


def test_task_renders_one_mixed_grid_with_recipe(studio_home):
    from studio.io.media import read_recipe
    from studio.tasks.diffscaler.task import DiffscalerTask

    task = DiffscalerTask()
    inputs = task.validate({"datasets": ["outline", "pixel"], "num": 4, "steps": 3, "model": "tiny-base"})
    net = task.load(task.cache_key(inputs))
    steps = []
    ctx = RunContext(seed=5, out_dir=studio_home / "out", recipe={"task": "diffscaler", "inputs": inputs.model_dump(), "seed": 5},
                     progress_fn=lambda f, m, p: steps.append(f))
    result = task.run(net, inputs, ctx)
    assert len(steps) == 3 and steps[-1] == 1.0  # one report per denoising step
    png = next(f.path for f in result.files if f.kind == "image")
    assert read_recipe(png)["datasets"] == ["outline", "pixel"]
    assert result.data["datasets"] == ["outline", "pixel", "outline", "pixel"]
    side = json.loads(next(f.path for f in result.files if f.kind == "json").read_text())
    assert side["classes"][:2] == ["circle", "circle"]


def test_mixed_batch_equals_datasets_rendered_alone(studio_home):
    from studio.tasks.diffscaler.model import load_base
    from studio.tasks.diffscaler.pipeline import denoise, initial_noise

    net = load_base("tiny-base")
    for d in ("outline", "pixel"):
        net.load(f"diffscaler-{d}", d)
    names, labels = ["outline", "pixel", "pixel", "outline"], [0, 1, 2, 3]
    x_T = initial_noise(4, 3, 16, seed=0)
    with torch.no_grad():
        mixed = denoise(net, names, labels, x_T, steps=3)
        for d in ("outline", "pixel"):
            idx = [i for i, n in enumerate(names) if n == d]
            net.tuner.set_adapter(d)
            alone = denoise(net, [d] * len(idx), [labels[i] for i in idx], x_T[idx], steps=3)
            torch.testing.assert_close(mixed[idx], alone, rtol=1e-4, atol=1e-4)


def test_bad_input_names_the_field(studio_home):
    from pydantic import ValidationError

    from studio.lora.files import write_adapter_dir
    from studio.tasks.diffscaler.task import DiffscalerTask

    task = DiffscalerTask()
    ok = {"datasets": ["outline"], "model": "tiny-base"}
    with pytest.raises(InputError) as e:
        task.validate({**ok, "datasets": ["nope"]})
    assert e.value.field == "datasets"
    with pytest.raises(InputError) as e:
        task.validate({**ok, "model": "missing-base"})
    assert e.value.field == "model"
    with pytest.raises(InputError) as e:
        task.validate({**ok, "datasets": ["outline", "outline"]})
    assert e.value.field == "datasets"
    # a LoRA adapter cannot share a per-sample-routed batch
    write_adapter_dir(studio_home / "adapters" / "zz-lora", {"w": torch.zeros(1)}, {"peft_type": "LORA"},
                      {"adapter_type": "lora", "base_model_id": "tiny-base"}, "# lora\n")
    with pytest.raises(InputError, match="only affiners") as e:
        task.validate({**ok, "datasets": ["outline", "zz-lora"]})
    assert e.value.field == "datasets"
    # an affiner trained on another base
    other = studio_home / "models" / "other-base"
    if not other.exists():
        other.symlink_to(studio_home / "models" / "tiny-base")
    with pytest.raises(InputError, match="trained on base") as e:
        task.validate({**ok, "model": "other-base"})
    assert e.value.field == "datasets"
    with pytest.raises(ValidationError, match="num"):
        task.validate({**ok, "num": 0})


def test_config_rejects_unknown_keys(tmp_path):
    from studio.tasks.diffscaler.train import DiffscalerTrainConfig
    from studio.train.config import ConfigError, load_config

    cfg = tmp_path / "c.toml"
    cfg.write_text('output_dir = "x"\nmax_steps = 3\n[adapter]\ndataset = "pixel"\nstepz = 3\n')
    with pytest.raises(ConfigError, match="adapter.stepz"):
        load_config(cfg, DiffscalerTrainConfig)
    cfg.write_text('output_dir = "x"\nmax_steps = 3\n[adapter]\ndataset = "pixel"\ntargets = ["attention", "bogus"]\n')
    with pytest.raises(ConfigError, match="adapter.targets"):
        load_config(cfg, DiffscalerTrainConfig)


def test_finetune_script_on_a_text_conditioned_base(tmp_path, monkeypatch):
    """The shipped setup in small: a text-conditioned DiT (like image-dit) as the frozen base, one
    affiner trained from a config file by the shared Trainer, saved, and loaded back by name."""
    from studio.core.dit import DiT
    from studio.core.text import TEXT_DIM
    from studio.lora.affiner import ADAPTER_TYPE
    from studio.lora.files import adapter_info
    from studio.tasks.diffscaler.model import load_base
    from studio.tasks.diffscaler.train import main

    monkeypatch.setenv("STUDIO_MODELS", str(tmp_path / "models"))
    monkeypatch.setenv("STUDIO_ADAPTERS", str(tmp_path / "adapters"))
    torch.manual_seed(0)
    base = DiT(sample_size=16, patch_size=4, in_channels=3, hidden_size=32, depth=1, num_heads=2,
               learn_sigma=True, context_dim=TEXT_DIM, pooled_dim=TEXT_DIM)
    with torch.no_grad():  # as if pretrained: no zero-initialised layers left
        for p in base.parameters():
            p.add_(0.05 * torch.randn_like(p))
    base.save_pretrained(str(tmp_path / "models" / "text-base"))
    cfg = tmp_path / "pixel.toml"
    cfg.write_text(f'output_dir = "{tmp_path / "run"}"\nmax_steps = 4\nbatch_size = 4\n'
                   '[optimizer]\nlr = 1e-2\n[log]\nevery = 2\nprogress_bar = false\n'
                   '[adapter]\ndataset = "pixel"\nbase = "text-base"\nrank = 2\n[data]\ntrain_images = 16\n')
    stats = main(cfg)
    assert stats["steps"] == 4 and stats["trainable_parameters"] > 0
    assert (tmp_path / "run" / "metrics.jsonl").is_file() and (tmp_path / "run" / "loss_curve.png").is_file()
    info = adapter_info(tmp_path / "adapters" / "diffscaler-pixel")
    assert info.type == ADAPTER_TYPE and info.base == "text-base"
    net = load_base("text-base")
    assert net.null_text is not None  # a text base: classes start from the null caption's pooled vector
    net.load("diffscaler-pixel", "pixel")
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        routed = net(x, torch.tensor([10, 500]), torch.tensor([0, 1]), ["pixel", "pixel"])
        plain = load_base("text-base")(x, torch.tensor([10, 500]), torch.tensor([0, 1]))  # no adapter
    assert routed.shape == plain.shape and not torch.allclose(routed, plain)  # the trained affiner acts
