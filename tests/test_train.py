"""The shared training loop: config validation, data order, exact resume, accumulation, EMA, outputs."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest
import torch
from torch import nn

from studio.train import (ConfigError, ResumableBatchSampler, Section, TrainConfig, Trainer, list_checkpoints,
                          load_config, read_metrics)


class Regression(torch.utils.data.Dataset):
    """y = x·w + noise, fixed by its seed; items are a pure function of the index."""

    def __init__(self, n: int = 48, dim: int = 8, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, dim, generator=g)
        self.y = self.x @ torch.randn(dim, 1, generator=g) + 0.01 * torch.randn(n, 1, generator=g)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"x": self.x[i], "y": self.y[i], "index": i}


def make_model(seed: int = 0, dropout: float = 0.0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 32), nn.GELU(), nn.Dropout(dropout), nn.Linear(32, 1))


def mse(model, batch):
    loss = (model(batch["x"]) - batch["y"]).square().mean()
    return loss, {"mae": (model(batch["x"]) - batch["y"]).abs().mean().item()}


def noisy_objective(model, batch):
    """Uses every RNG a real objective might: torch (noise, dropout), numpy and python random."""
    scale = 1.0 + 0.01 * float(np.random.rand()) + 0.01 * random.random()
    x = batch["x"] + 0.05 * torch.randn_like(batch["x"])
    return (model(x) * scale - batch["y"]).square().mean(), {}


def config(tmp_path, **kw) -> TrainConfig:
    base = dict(output_dir=tmp_path, max_steps=10, batch_size=4, seed=3, log={"every": 1, "progress_bar": False},
                optimizer={"lr": 3e-3})
    base.update(kw)
    return TrainConfig.model_validate(base)


# ---- config -------------------------------------------------------------------------------------------


def test_config_toml_yaml_and_errors(tmp_path):
    toml = tmp_path / "run.toml"
    toml.write_text('output_dir = "out"\nmax_steps = 100\nmixed_precision = "bf16"\n'
                    '[optimizer]\nlr = 2e-4\nbetas = [0.9, 0.95]\n[ema]\ndecay = 0.99\n'
                    '[checkpoint]\nevery = 10\nkeep = 2\n')
    cfg = load_config(toml)
    assert cfg.optimizer.betas == (0.9, 0.95) and cfg.ema.decay == 0.99 and cfg.checkpoint.keep == 2
    assert cfg.schedule.name == "cosine" and cfg.mixed_precision == "bf16"
    yml = tmp_path / "run.yaml"
    yml.write_text("output_dir: out\nmax_steps: 5\noptimizer:\n  lr: 0.001\n")
    assert load_config(yml, overrides={"optimizer.lr": 0.5, "grad_accum": 4}).optimizer.lr == 0.5

    bad = tmp_path / "bad.toml"
    bad.write_text('output_dir = "o"\nmax_steps = 5\nlearning_rate = 1\n[optimizer]\nlrr = 1e-3\n')
    with pytest.raises(ConfigError) as e:
        load_config(bad)
    assert "learning_rate: unknown key" in str(e.value) and "optimizer.lrr: unknown key" in str(e.value)
    assert "bad.toml" in str(e.value)
    bad.write_text('output_dir = "o"\nmax_steps = -1\nmixed_precision = "fp8"\n')
    with pytest.raises(ConfigError, match="max_steps") as e:
        load_config(bad)
    assert "mixed_precision" in str(e.value)
    (tmp_path / "x.ini").write_text("")
    with pytest.raises(ConfigError, match="unknown config format"):
        load_config(tmp_path / "x.ini")


def test_plugin_config_extends_train_config(tmp_path):
    class DataSection(Section):
        root: str
        image_size: int = 32

    class MyConfig(TrainConfig):
        data: DataSection

    p = tmp_path / "my.toml"
    p.write_text('output_dir = "o"\nmax_steps = 3\n[data]\nroot = "shapes"\n')
    cfg = load_config(p, MyConfig)
    assert cfg.data.root == "shapes" and cfg.data.image_size == 32
    p.write_text('output_dir = "o"\nmax_steps = 3\n[data]\nroot = "shapes"\nimage_sise = 8\n')
    with pytest.raises(ConfigError, match="data.image_sise: unknown key"):
        load_config(p, MyConfig)


# ---- data order ---------------------------------------------------------------------------------------


def test_sampler_shards_and_resumes():
    full = ResumableBatchSampler(20, batch_size=4, seed=1)
    assert len(full) == 5
    epoch0 = list(full)
    assert sorted(i for b in epoch0 for i in b) == list(range(20))
    full.set_position(1)
    assert list(full) != epoch0  # a new permutation each epoch
    full.set_position(1, start=3)
    tail = list(full)
    full.set_position(1)
    assert tail == list(full)[3:]
    ranks = [ResumableBatchSampler(20, batch_size=2, seed=1, rank=r, world_size=2) for r in (0, 1)]
    for b0, b1, g in zip(*ranks, epoch0):
        assert b0 + b1 == g  # the two ranks split the same global batch
    with pytest.raises(ValueError, match="batch_size"):
        ResumableBatchSampler(3, batch_size=4)


# ---- training -----------------------------------------------------------------------------------------


def test_trains_logs_checkpoints_samples(tmp_path):
    seen = []

    def sample_fn(model, step, out):
        assert not model.training
        torch.randn(3)  # drawing noise here must not disturb training
        (out / "pred.json").write_text(json.dumps(model(torch.ones(1, 8)).tolist()))
        seen.append(step)

    cfg = config(tmp_path, max_steps=40, batch_size=8, schedule={"warmup_steps": 4}, optimizer={"lr": 2e-2},
                 checkpoint={"every": 10, "keep": 2}, samples={"every": 15}, log={"every": 5, "progress_bar": True})
    model = make_model()
    result = Trainer(model, mse, Regression(), cfg, sample_fn=sample_fn).train()
    rows = read_metrics(result.metrics_path)
    assert [r["step"] for r in rows] == list(range(5, 41, 5))
    assert rows[-1]["loss"] < 0.3 * rows[0]["loss"]  # it learns
    assert {"lr", "grad_norm", "mae", "samples_per_s", "epoch"} <= set(rows[0])
    # warm-up over at 4 steps, then cosine down to 0 at step 40 (lr logged is the next step's)
    assert rows[0]["lr"] == pytest.approx(2e-2 * 0.5 * (1 + math.cos(math.pi * (5 - 4) / 36)), rel=1e-6)
    assert rows[-1]["lr"] == 0.0
    assert [s for s, _ in list_checkpoints(tmp_path)] == [30, 40]  # last K=2 kept
    assert seen == [15, 30, 40]  # every M steps + at the end
    assert (tmp_path / "samples" / "step_00000015" / "pred.json").is_file()
    assert result.loss_curve is not None and result.loss_curve.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((tmp_path / "train_config.json").read_text())["max_steps"] == 40


def test_an_objective_echoing_its_loss_is_logged_once(tmp_path):
    """The loss the objective returns is what "loss" logs, even when its logs repeat it under that key."""
    def echo(model, batch):
        loss = (model(batch["x"]) - batch["y"]).square().mean()
        return loss, {"loss": loss.item()}

    cfg = config(tmp_path / "echo", max_steps=3, log={"every": 1, "progress_bar": False})
    echoed = read_metrics(Trainer(make_model(), echo, Regression(), cfg).train().metrics_path)
    cfg = config(tmp_path / "plain", max_steps=3, log={"every": 1, "progress_bar": False})
    plain = read_metrics(Trainer(make_model(), mse, Regression(), cfg).train().metrics_path)
    assert [r["loss"] for r in echoed] == pytest.approx([r["loss"] for r in plain])


def _snapshot(trainer: Trainer) -> dict[str, torch.Tensor]:
    snap = {f"model.{k}": v.clone() for k, v in trainer.unwrapped_model.state_dict().items()}
    if trainer.ema is not None:
        snap.update({f"ema.{i}": p.clone() for i, p in enumerate(trainer.ema.shadow_params)})
    for i, (k, v) in enumerate(trainer.optimizer.state_dict()["state"].items()):
        snap.update({f"opt.{k}.{n}": t.clone() for n, t in v.items() if torch.is_tensor(t)})
    snap["lr"] = torch.tensor(trainer.scheduler.get_last_lr())
    return snap


@pytest.mark.parametrize("precision", ["no", "bf16"])
def test_resume_is_exact(tmp_path, precision):
    """2N steps straight == N steps, a fresh process-like restart from the checkpoint, N more steps."""
    n = 7  # 48 items / (4 × 2 accum) = 6 steps per epoch: the resume point sits inside epoch 1
    kw = dict(max_steps=2 * n, grad_accum=2, mixed_precision=precision, ema={"decay": 0.9},
              samples={"every": 3}, checkpoint={"every": 100, "keep": 5}, schedule={"warmup_steps": 3})

    def sample_fn(model, step, out):
        torch.randn(5), np.random.rand(), random.random()

    # the straight run draws no samples: sampling must not move the training RNG streams either
    straight = Trainer(make_model(dropout=0.2), noisy_objective, Regression(), config(tmp_path / "a", **kw))
    straight.train()

    first = Trainer(make_model(dropout=0.2), noisy_objective, Regression(), config(tmp_path / "b", **kw),
                    sample_fn=sample_fn)
    first.train(stop_at=n)
    assert [s for s, _ in list_checkpoints(tmp_path / "b")] == [n]
    # scramble every RNG and start from a different init: all of it must come from the checkpoint
    torch.manual_seed(999), np.random.seed(999), random.seed(999)
    second = Trainer(make_model(seed=5, dropout=0.2), noisy_objective, Regression(),
                     config(tmp_path / "b", resume="latest", **kw), sample_fn=sample_fn)
    result = second.train()
    assert result.resumed_from.name == f"step_{n:08d}" and result.step == 2 * n

    a, b = _snapshot(straight), _snapshot(second)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    losses = lambda p: [(r["step"], r["loss"]) for r in read_metrics(p / "metrics.jsonl")]  # noqa: E731
    assert losses(tmp_path / "a") == losses(tmp_path / "b")


def test_grad_accumulation_matches_big_batch(tmp_path):
    big = Trainer(make_model(), mse, Regression(), config(tmp_path / "big", batch_size=8, max_steps=6))
    big.train()
    acc = Trainer(make_model(), mse, Regression(), config(tmp_path / "acc", batch_size=4, grad_accum=2, max_steps=6))
    acc.train()
    for (k, p), q in zip(big.unwrapped_model.state_dict().items(), acc.unwrapped_model.state_dict().values()):
        assert torch.allclose(p, q, atol=1e-6), k


def test_ema_and_lora_training(tmp_path):
    from studio import lora
    from studio.lora.identity import base_state

    class Attn(nn.Module):  # the core's stable projection names
        def __init__(self, d=8):
            super().__init__()
            self.to_q, self.to_k, self.to_v, self.to_out = (nn.Linear(d, d) for _ in range(4))

        def forward(self, x):
            w = torch.softmax(self.to_q(x) @ self.to_k(x).transpose(-1, -2), -1)  # (B, T, T)
            return x + self.to_out(w @ self.to_v(x))

    torch.manual_seed(0)
    model = lora.set_model_id(Attn(), "tiny")
    base = {k: v.clone() for k, v in base_state(model).items()}
    lora.add_lora(model, "fit", rank=2)

    class Tokens(Regression):
        def __getitem__(self, i):
            return {"x": self.x[i].view(1, 8), "y": self.x[i].flip(0).view(1, 8)}

    def objective(m, batch):
        return (m(batch["x"]) - batch["y"]).square().mean()

    trainer = Trainer(model, objective, Tokens(), config(tmp_path, max_steps=30, ema={"decay": 0.8}))
    result = trainer.train()
    rows = read_metrics(result.metrics_path)
    assert rows[-1]["loss"] < rows[0]["loss"]
    after = base_state(model)
    assert all(torch.equal(base[k], after[k]) for k in base)  # frozen base untouched
    live = [p.clone() for p in lora.lora_parameters(model, "fit")]
    with trainer.ema_weights() as m:
        ema = [p.clone() for p in lora.lora_parameters(m, "fit")]
    assert any(not torch.equal(x, y) for x, y in zip(live, ema))  # EMA is its own copy
    assert all(torch.equal(x, y) for x, y in zip(live, lora.lora_parameters(model, "fit")))  # restored


def test_callback_can_stop_and_bad_loss_is_caught(tmp_path):
    class Stop(Exception):
        pass

    def cb(step, total, logs):
        if step == 4:
            raise Stop

    with pytest.raises(Stop):
        Trainer(make_model(), mse, Regression(), config(tmp_path / "s", checkpoint={"every": 2}),
                step_callback=cb).train()
    assert [s for s, _ in list_checkpoints(tmp_path / "s")] == [2, 4]
    with pytest.raises(FloatingPointError, match="loss is nan"):
        Trainer(make_model(), lambda m, b: m(b["x"]).sum() * float("nan"), Regression(),
                config(tmp_path / "n")).train()
    frozen = make_model().requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        Trainer(frozen, mse, Regression(), config(tmp_path / "f")).train()


def test_import_is_lazy():
    import subprocess
    import sys

    code = "import sys, studio.train; print('accelerate' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_parse_overrides_reads_json_values_and_names_a_bad_flag():
    from studio.train import ConfigError, parse_overrides

    assert parse_overrides(["optimizer.lr=1e-4", "model.preset=tiny", "data.sizes=[32, 64]"]) == {
        "optimizer.lr": 1e-4, "model.preset": "tiny", "data.sizes": [32, 64]}
    with pytest.raises(ConfigError, match="'max_steps'"):
        parse_overrides(["max_steps"])
