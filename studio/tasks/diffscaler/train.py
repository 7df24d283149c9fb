"""Fine-tuning a frozen base on one target dataset: affiner, or the baselines it is compared with.

Methods (``MethodSpec.kind``), all with the new dataset's label table starting at the null class:
- ``affiner``: Diffscaler's per-layer affiners (the base stays frozen),
- ``full``: every base weight trains too (full fine-tuning),
- ``lora``: peft LoRA on the same layers (``studio.lora.add_lora``), base frozen,
- ``embed``: only the label table trains.

The step loop here is the small direct loop the eval's 12 short comparison runs need; it is a
stand-in for ``studio.train.Trainer`` (not available when this was written) and uses the shared
diffusion pieces (schedules, noising, loss).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Callable, Literal

import torch

from studio.diffusion import GaussianTerms, add_noise, diffusion_loss, make_scheduler
from studio.lora.affiner import AffinerConfig, TARGET_GROUPS
from studio.tasks.diffscaler.data import ImageSet
from studio.tasks.diffscaler.model import DiffscalerNet

MethodKind = Literal["affiner", "full", "lora", "embed"]
Precision = Literal["bf16", "fp32"]


@dataclass(frozen=True)
class MethodSpec:
    kind: MethodKind = "affiner"
    rank: int = 1  # affiner bottleneck / LoRA rank
    # attention + MLP + label table at rank 1 keeps the affiner under 2% of this small base
    # (per-channel a, b cost 2·out per layer, a larger share the narrower the model)
    targets: tuple[str, ...] = ("attention", "mlp", "label")
    lr: float = 2e-3


@dataclass(frozen=True)
class FinetuneSpec:
    dataset: str
    method: MethodSpec = field(default_factory=MethodSpec)
    steps: int = 400
    batch_size: int = 32
    train_images: int = 2048
    label_dropout: float = 0.1  # keeps the unconditional branch for classifier-free guidance
    warmup: int = 20
    seed: int = 0
    # fp32: at this model size bf16 autocast is slower on this CPU (measured: 0.36 vs 0.29 s/step)
    precision: Precision = "fp32"


def attach(net: DiffscalerNet, name: str, method: MethodSpec, num_labels: int) -> list[torch.nn.Parameter]:
    """Add what ``method`` trains for dataset ``name``; returns the trainable parameters."""
    label_only = AffinerConfig(rank=0, targets=["label"], num_labels=num_labels)
    if method.kind == "affiner":
        net.add(name, AffinerConfig(rank=method.rank, targets=list(method.targets), num_labels=num_labels))
    elif method.kind == "embed":
        net.add(name, label_only)
    elif method.kind == "full":
        net.add(name, label_only)
        net.base.requires_grad_(True)
    elif method.kind == "lora":
        from studio.lora import add_lora

        net.add(name, label_only)
        modules = sorted({m for g in method.targets if g != "label" for m in TARGET_GROUPS[g]})
        add_lora(net.base, name, rank=method.rank, alpha=method.rank, targets=modules)
        for n, p in net.named_parameters():  # peft froze everything but LoRA; the label table trains too
            if ".affiner_" in n and f".{name}" in n:
                p.requires_grad_(True)
    else:
        raise ValueError(f"method: unknown kind {method.kind!r}")
    return [p for p in net.parameters() if p.requires_grad]


def lora_rank_matching(net: DiffscalerNet, affiner_params: int, targets: tuple[str, ...]) -> int:
    """The LoRA rank whose parameter count is closest to an affiner's (LoRA: r·(in+out) a layer)."""
    names = {m for g in targets if g != "label" for m in TARGET_GROUPS[g]}
    per_rank = sum(m.in_features + m.out_features for n, m in net.base.named_modules()
                   if isinstance(m, torch.nn.Linear) and n.replace(".base_layer", "").rsplit(".", 1)[-1] in names)
    return max(1, round(affiner_params / max(per_rank, 1)))


def _autocast(precision: Precision, device: str):
    if precision == "bf16":
        return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def fit(net: DiffscalerNet, name: str, spec: FinetuneSpec, data: ImageSet, device: str = "cpu",
        log: Callable[[int, float], None] | None = None) -> dict[str, float]:
    """Train dataset ``name`` (already attached) for ``spec.steps``; returns time and losses."""
    params = [p for p in net.parameters() if p.requires_grad]
    names = [name] * spec.batch_size
    net.train()
    try:
        return denoising_loop(lambda xt, t, y: net(xt, t, y, names), params, data, spec, net.null_label,
                              device, log)
    finally:
        net.eval()


def denoising_loop(forward: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
                   params: list[torch.nn.Parameter], data: ImageSet, spec: FinetuneSpec, null_label: int,
                   device: str = "cpu", log: Callable[[int, float], None] | None = None) -> dict[str, float]:
    """DDPM training steps on ``data``: L_simple (+ VLB for learned σ), AdamW, warm-up, clipping."""
    if not params:
        raise ValueError("method: nothing to train")
    x_all, y_all = data.tensors()  # (N, 3, H, W) in [-1, 1], (N,)
    ddpm = make_scheduler("ddpm")
    terms = GaussianTerms.from_scheduler(ddpm)
    opt = torch.optim.AdamW(params, lr=spec.method.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(spec.warmup, 1)))
    g = torch.Generator().manual_seed(spec.seed)
    losses: list[float] = []
    start = time.perf_counter()
    for step in range(spec.steps):
        idx = torch.randint(0, len(x_all), (spec.batch_size,), generator=g)
        x0, y = x_all[idx].to(device), y_all[idx].to(device)
        drop = torch.rand(spec.batch_size, generator=g) < spec.label_dropout
        y = torch.where(drop.to(device), null_label, y)
        noise = torch.randn(x0.shape, generator=g).to(device)
        t = torch.randint(0, ddpm.config.num_train_timesteps, (spec.batch_size,), generator=g).to(device)
        xt = add_noise(ddpm, x0, noise, t)
        with _autocast(spec.precision, device):
            out = forward(xt, t, y)
        loss, _ = diffusion_loss(out.float(), noise, x0, xt, t, terms)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        if log is not None:
            log(step, losses[-1])
    seconds = time.perf_counter() - start
    tail = losses[-max(1, len(losses) // 10):]
    return {"steps": spec.steps, "seconds": seconds, "final_loss": sum(tail) / len(tail),
            "trainable_parameters": sum(p.numel() for p in params)}


# ------------------------------------------------------------------------------------------------
# `studio train diffscaler CONFIG` / `scripts/finetune_diffscaler.py --config CONFIG`


def load_config(path: str) -> tuple[FinetuneSpec, dict]:
    """A TOML file → (FinetuneSpec, {"base", "out", "threads"}); unknown keys are errors naming the key."""
    import tomllib
    from pathlib import Path

    from pydantic import BaseModel, ConfigDict, ValidationError

    class _Method(BaseModel):
        model_config = ConfigDict(extra="forbid")
        kind: MethodKind = "affiner"
        rank: int = 1
        targets: list[str] = list(MethodSpec().targets)
        lr: float = 2e-3

    class _Config(BaseModel):
        model_config = ConfigDict(extra="forbid")
        dataset: str
        base: str = "diffscaler-base"
        out: str | None = None
        steps: int = 400
        batch_size: int = 24
        train_images: int = 1024
        label_dropout: float = 0.1
        seed: int = 0
        precision: Precision = "fp32"
        threads: int = 1
        method: _Method = _Method()

    try:
        raw = _Config.model_validate(tomllib.loads(Path(path).read_text()))
    except ValidationError as exc:
        first = exc.errors()[0]
        raise SystemExit(f"{path}: {'.'.join(map(str, first['loc']))}: {first['msg']}") from None
    m = raw.method
    unknown = [t for t in m.targets if t not in TARGET_GROUPS]
    if unknown:
        raise SystemExit(f"{path}: method.targets: unknown {unknown}; choose from {sorted(TARGET_GROUPS)}")
    spec = FinetuneSpec(raw.dataset, MethodSpec(m.kind, m.rank, tuple(m.targets), m.lr), steps=raw.steps,
                        batch_size=raw.batch_size, train_images=raw.train_images,
                        label_dropout=raw.label_dropout, seed=raw.seed, precision=raw.precision)
    return spec, {"base": raw.base, "out": raw.out, "threads": raw.threads}


def main(config_path: str) -> dict:
    """Fine-tune one affiner and write it to ``adapters/diffscaler-<dataset>/`` (or ``out``)."""
    from pathlib import Path

    from studio.paths import adapters_dir
    from studio.tasks.diffscaler import data as ddata
    from studio.tasks.diffscaler.adapters import adapter_name, card, record, save
    from studio.tasks.diffscaler.model import load_base

    spec, extra = load_config(config_path)
    if spec.method.kind != "affiner":
        raise SystemExit(f"{config_path}: method.kind: only 'affiner' adapters are shipped "
                         f"(the baselines run inside `studio eval diffscaler`)")
    torch.set_num_threads(extra["threads"])
    net = load_base(extra["base"])
    train_set = ddata.load(spec.dataset, spec.train_images, "train")
    attach(net, spec.dataset, spec.method, len(train_set.classes))
    stats = fit(net, spec.dataset, spec, train_set,
                log=lambda s, l: print(f"step {s}: loss {l:.4f}", flush=True) if s % 50 == 0 else None)
    out = Path(extra["out"]) if extra["out"] else adapters_dir() / adapter_name(spec.dataset)
    rec = record(net, spec.dataset, stats, extra={"rank": spec.method.rank, "lr": spec.method.lr,
                                                  "batch_size": spec.batch_size})
    save(net, spec.dataset, out, rec, card(spec.dataset, rec, stats))
    print(f"wrote {out} ({stats['trainable_parameters']:,} parameters, {stats['seconds']:.0f} s)")
    return stats
