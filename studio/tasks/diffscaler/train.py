"""Fine-tuning a frozen base on one target dataset: affiner, or the baselines it is compared with.

Methods (``MethodSpec.kind``), all with the new dataset's label table starting at the null class:
- ``affiner``: Diffscaler's per-layer affiners (the base stays frozen),
- ``full``: every base weight trains too (full fine-tuning),
- ``lora``: peft LoRA on the same layers (``studio.lora.add_lora``), base frozen,
- ``embed``: only the label table trains.

Every run goes through the shared ``studio.train.Trainer`` (AdamW, warm-up, clipping, metrics,
loss curve, checkpoints and exact resume) with :class:`AffinerObjective` — the DDPM step of
``studio.diffusion.DDPMTraining`` with each sample routed to its dataset's adapter.
``scripts/finetune_diffscaler.py --config`` reads a :class:`DiffscalerTrainConfig` (TOML/YAML);
the eval's comparison runs build the same config from a :class:`FinetuneSpec`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from pydantic import Field, field_validator

from studio.diffusion import DDPMTraining
from studio.lora.affiner import AffinerConfig, TARGET_GROUPS
from studio.tasks.diffscaler.data import ImageSet
from studio.tasks.diffscaler.model import DiffscalerNet
from studio.train.config import Section, TrainConfig

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


class AffinerObjective:
    """DDPM loss with every sample routed to dataset ``name``; dropped labels → the null class."""

    def __init__(self, name: str, null_label: int, label_dropout: float, seed: int = 0):
        self.name, self.null_label, self.p_drop = name, null_label, label_dropout
        self.ddpm = DDPMTraining(seed)

    def __call__(self, model: DiffscalerNet, batch) -> tuple[torch.Tensor, dict[str, float]]:
        x0, y = batch
        drop = self.ddpm.dropped(x0.shape[0], self.p_drop).to(y.device)
        y = torch.where(drop, torch.full_like(y, self.null_label), y)
        xt, t, noise = self.ddpm.noised(x0)
        out = model(xt, t, y, [self.name] * x0.shape[0])
        return self.ddpm.loss(out, x0, xt, t, noise)


# ------------------------------------------------------------------------------------------------
# The config file of `scripts/finetune_diffscaler.py --config` / `studio train diffscaler CONFIG`


class AdapterSection(Section):
    dataset: str = Field(..., description="A procedural dataset name or a folder (class sub-folders or .txt labels).")
    base: str = Field("image-dit", description="The frozen base under models/ (or a path).")
    kind: MethodKind = "affiner"
    rank: int = Field(1, ge=0, description="Affiner bottleneck width (LoRA rank for kind = lora).")
    targets: list[str] = Field(default_factory=lambda: list(MethodSpec().targets))
    out: str | None = Field(None, description="Adapter folder (default adapters/diffscaler-<dataset>).")

    @field_validator("targets")
    @classmethod
    def _known_targets(cls, v: list[str]) -> list[str]:
        unknown = [t for t in v if t not in TARGET_GROUPS]
        if unknown:
            raise ValueError(f"unknown {unknown}; choose from {sorted(TARGET_GROUPS)}")
        return v


class DataSection(Section):
    train_images: int = Field(1024, ge=1)
    label_dropout: float = Field(0.1, ge=0, lt=1)


class DiffscalerTrainConfig(TrainConfig):
    adapter: AdapterSection
    data: DataSection = DataSection()
    threads: int = Field(0, ge=0, description="torch CPU threads (0: torch's default).")


def train_config(spec: FinetuneSpec, output_dir: str | Path, **overrides) -> DiffscalerTrainConfig:
    """The Trainer config of a :class:`FinetuneSpec` (the eval's comparison runs): no checkpoints,
    no samples, quiet."""
    m = spec.method
    return DiffscalerTrainConfig.model_validate({
        "output_dir": str(output_dir), "max_steps": spec.steps, "batch_size": spec.batch_size, "seed": spec.seed,
        "mixed_precision": "bf16" if spec.precision == "bf16" else "no",
        "optimizer": {"lr": m.lr}, "schedule": {"name": "constant_with_warmup", "warmup_steps": spec.warmup},
        "checkpoint": {"every": 0, "at_end": False}, "samples": {"every": 0, "at_end": False},
        "log": {"every": max(1, min(25, spec.steps)), "progress_bar": False},
        "adapter": {"dataset": spec.dataset, "kind": m.kind, "rank": m.rank, "targets": list(m.targets)},
        "data": {"train_images": spec.train_images, "label_dropout": spec.label_dropout},
        **overrides,
    })


class _Pairs(torch.utils.data.Dataset):
    def __init__(self, data: ImageSet):
        self.x, self.y = data.tensors()  # (N, 3, H, W) in [-1, 1], (N,)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        return self.x[i], self.y[i]


def train(net: DiffscalerNet, name: str, cfg: DiffscalerTrainConfig, data: ImageSet) -> dict[str, float]:
    """Train dataset ``name`` (already attached to ``net``) with the shared Trainer."""
    from studio.train import Trainer

    objective = AffinerObjective(name, net.null_label, cfg.data.label_dropout, cfg.seed)
    start = time.perf_counter()
    try:
        result = Trainer(net, objective, _Pairs(data), cfg).train()
    finally:
        net.eval()
    return {"steps": result.step, "seconds": time.perf_counter() - start, "final_loss": float(result.loss or 0.0),
            "trainable_parameters": sum(p.numel() for p in net.parameters() if p.requires_grad),
            "loss_curve": str(result.loss_curve) if result.loss_curve else None}


def fit(net: DiffscalerNet, name: str, spec: FinetuneSpec, data: ImageSet,
        output_dir: str | Path | None = None) -> dict[str, float]:
    """Train dataset ``name`` (already attached) for ``spec.steps`` (metrics under ``output_dir``,
    a temporary folder when None); returns time and losses."""
    import tempfile

    if output_dir is not None:
        return train(net, name, train_config(spec, output_dir), data)
    with tempfile.TemporaryDirectory(prefix="diffscaler-") as tmp:
        stats = train(net, name, train_config(spec, tmp), data)
    stats["loss_curve"] = None
    return stats


def main(config_path: str | Path, overrides: dict | None = None) -> dict:
    """Fine-tune one affiner and write it to ``adapters/diffscaler-<dataset>/`` (or ``adapter.out``)."""
    from studio.paths import adapters_dir
    from studio.tasks.diffscaler import data as ddata
    from studio.tasks.diffscaler.adapters import adapter_name, card, record, save
    from studio.tasks.diffscaler.model import load_base
    from studio.train.config import load_config

    cfg = load_config(config_path, DiffscalerTrainConfig, overrides)
    a = cfg.adapter
    if a.kind != "affiner":
        raise SystemExit(f"{config_path}: adapter.kind: only 'affiner' adapters are shipped "
                         f"(the baselines run inside `studio eval diffscaler`)")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    method = MethodSpec(a.kind, a.rank, tuple(a.targets), cfg.optimizer.lr)
    net = load_base(a.base)
    train_set = ddata.load(a.dataset, cfg.data.train_images, "train", size=net.sample_size)
    attach(net, a.dataset, method, len(train_set.classes))
    stats = train(net, a.dataset, cfg, train_set)
    out = Path(a.out) if a.out else adapters_dir() / adapter_name(a.dataset)
    rec = record(net, a.dataset, stats, extra={"rank": a.rank, "lr": cfg.optimizer.lr, "batch_size": cfg.batch_size,
                                               "targets": list(a.targets)})
    save(net, a.dataset, out, rec, card(a.dataset, rec, stats))
    print(f"wrote {out} ({stats['trainable_parameters']:,} parameters, {stats['seconds']:.0f} s)")
    return stats
