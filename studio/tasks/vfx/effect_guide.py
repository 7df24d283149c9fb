"""Effect guide: a noise-aware effect classifier p(effect | z_t, t, reference, mask), for classifier guidance
(Dhariwal & Nichol 2021, "Diffusion Models Beat GANs on Image Synthesis", §4: a classifier trained on noisy
inputs, whose gradient ∇ log p(y | x_t) steers sampling towards class y).

Why: the effect a clip shows is decided in the first two of 10 DDIM steps, where the model follows the noise
rather than the prompt (``docs/benchmarks/vfx_effect_decision.md``). A classifier that reads the effect from the
noisy residual latent itself can push those steps towards the effect that was asked for.

It sees exactly what the diffusion model sees: the residual latent z = (video − reference)·2 noised by the vfx
schedule with the base's frame-correlated noise ρ, the reference frame and the instance mask (absent: the whole
frame), and the timestep through FiLM. It is trained on the adapters' own training clips (seed 1) and measured
on clips of seed ``GUIDE_VAL_SEED``. It is not the evaluation's classifier (``classifier.py``: clean pixels,
clips of seeds 1000/2000), which it never sees or imitates.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from studio.core.embeddings import timestep_features
from studio.tasks.vfx.data import ClipDataset
from studio.tasks.vfx.effects import EFFECT_NAMES

GUIDE_TRAIN_SEED = 1  # the adapters' training clips
GUIDE_VAL_SEED = 3_000  # no other run uses it
WEIGHTS, CONFIG, RECORD = "effect_guide.safetensors", "config.json", "training.json"
T_BUCKETS = ((0, 300), (300, 600), (600, 800), (800, 900), (900, 1000))  # accuracy is reported per noise band


@dataclass(frozen=True)
class EffectGuideConfig:
    classes: tuple[str, ...] = EFFECT_NAMES
    width: int = 24
    frame_noise_correlation: float = 0.9  # ρ of the base the guide is trained for (models/vfx-base)
    mask_dropout: float = 0.1  # share of training inputs whose mask is the whole frame (no mask given)


class FiLMBlock(nn.Module):
    """conv → GroupNorm → scale/shift from the timestep code → GELU → pool."""

    def __init__(self, c_in: int, c_out: int, temb: int, pool: tuple[int, int, int] | None):
        super().__init__()
        self.conv = nn.Conv3d(c_in, c_out, 3, padding=1)
        self.norm = nn.GroupNorm(8, c_out)
        self.film = nn.Linear(temb, 2 * c_out)
        self.pool = nn.MaxPool3d(pool) if pool else nn.Identity()

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        scale, shift = self.film(temb)[:, :, None, None, None].chunk(2, 1)
        return self.pool(nn.functional.gelu(self.norm(self.conv(x)) * (1 + scale) + shift))


class EffectGuide(nn.Module):
    def __init__(self, config: EffectGuideConfig = EffectGuideConfig()):
        super().__init__()
        self.config = config
        w, temb = config.width, 4 * config.width
        self.temb = nn.Sequential(nn.Linear(128, temb), nn.SiLU(), nn.Linear(temb, temb))
        chans = (7, w, 2 * w, 3 * w, 4 * w)  # in: z_t (3) + reference (3) + mask (1)
        pools = ((1, 2, 2), (2, 2, 2), (2, 2, 2), None)  # 32² × T → 16² → 8² × T/2 → 4² × T/4
        self.blocks = nn.ModuleList(FiLMBlock(a, b, temb, p) for a, b, p in zip(chans, chans[1:], pools))
        self.head = nn.Linear(4 * w, len(config.classes))

    def forward(self, zt: torch.Tensor, t: torch.Tensor, ref: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """z_t (B, 3, T, H, W), t (B,), reference (B, 3, H, W) in [-1, 1], mask (B, 1, T, H, W) or None → logits."""
        B, _, T, H, W = zt.shape
        if mask is None:
            mask = torch.ones(B, 1, T, H, W, device=zt.device, dtype=zt.dtype)
        x = torch.cat([zt, ref[:, :, None].expand(-1, -1, T, -1, -1).to(zt.dtype), mask.to(zt.dtype) * 2 - 1], 1)
        temb = self.temb(timestep_features(t.float(), 128).to(zt.device))
        for block in self.blocks:
            x = block(x, temb)
        return self.head(x.mean(dim=(2, 3, 4)))  # (B, classes)


def noisy_inputs(clips: list, t: torch.Tensor, rho: float, generator: torch.Generator, scheduler: Any,
                 mask_dropout: float = 0.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Clips → (z_t, reference, mask video) noised at timesteps t exactly as the diffusion model's input
    (``scheduler``: the vfx schedule's ᾱ, ``training_scheduler()``)."""
    from studio.diffusion import add_noise, mixed_noise
    from studio.tasks.vfx.objective import encode, ref_mask_video, to_unit

    video = to_unit(torch.stack([torch.from_numpy(c.frames) for c in clips]))  # (B, 3, T, H, W)
    ref = video[:, :, 0]
    z0 = encode(video, ref)
    noise = mixed_noise(z0.shape, rho, dim=2, generator=generator)
    zt = add_noise(scheduler, z0, noise, t)
    mask = ref_mask_video(torch.stack([torch.from_numpy(c.mask[0]) for c in clips]), z0.shape[2])
    keep = torch.rand(len(clips), generator=generator) >= mask_dropout
    mask = torch.where(keep[:, None, None, None, None], mask, torch.ones_like(mask))
    return zt, ref, mask


def training_scheduler() -> Any:
    """The vfx diffusion schedule (DDPM over ``NOISE``), whose ᾱ noises the guide's inputs."""
    from studio.diffusion import scheduler_from_spec
    from studio.tasks.vfx.objective import NOISE

    return scheduler_from_spec("ddpm", NOISE)


def labels_of(clips: list, classes: tuple[str, ...]) -> torch.Tensor:
    return torch.tensor([classes.index(c.effect) for c in clips])


def train_effect_guide(out: Path, clips: int = 4400, steps: int = 2400, batch: int = 32, lr: float = 2e-3,
                       val_clips: int = 330, config: EffectGuideConfig = EffectGuideConfig(), seed: int = 0,
                       log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train on ``clips`` clips of the adapters' training seed, each step at uniform random timesteps; measure
    accuracy per noise band on clips of ``GUIDE_VAL_SEED``; save weights, config, record and loss curve in ``out``."""
    from studio.train.metrics import plot_loss_curve

    torch.manual_seed(seed)
    train = ClipDataset(config.classes, clips, seed=GUIDE_TRAIN_SEED).clips
    labels = labels_of(train, config.classes)
    model = EffectGuide(config)
    opt = torch.optim.AdamW(model.parameters(), lr, weight_decay=1e-2)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps, pct_start=0.05)
    g = torch.Generator().manual_seed(seed)
    out.mkdir(parents=True, exist_ok=True)
    metrics = (out / "metrics.jsonl").open("w")
    scheduler = training_scheduler()
    t0 = time.time()
    for step in range(steps):
        idx = torch.randint(0, len(train), (batch,), generator=g)
        t = torch.randint(0, 1000, (batch,), generator=g)
        zt, ref, mask = noisy_inputs([train[i] for i in idx], t, config.frame_noise_correlation, g, scheduler,
                                     config.mask_dropout)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = nn.functional.cross_entropy(model(zt, t, ref, mask).float(), labels[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 25 == 0 or step == steps - 1:
            metrics.write(json.dumps({"step": step, "loss": round(loss.item(), 4)}) + "\n")
            metrics.flush()
        if step % 250 == 0:
            log(f"effect guide step {step} loss {loss.item():.3f} ({time.time() - t0:.0f} s)")
    metrics.close()
    model.eval()
    record = {"train_clips": clips, "train_seed": GUIDE_TRAIN_SEED, "steps": steps, "batch": batch, "lr": lr,
              "val_clips": val_clips, "val_seed": GUIDE_VAL_SEED,
              "val_accuracy_by_t": band_accuracy(model, ClipDataset(config.classes, val_clips, GUIDE_VAL_SEED).clips),
              "seconds": round(time.time() - t0, 1)}
    save_effect_guide(model, out)
    (out / RECORD).write_text(json.dumps(record, indent=2))
    plot_loss_curve(out / "metrics.jsonl", out / "loss_curve.png")
    return record


@torch.no_grad()
def band_accuracy(model: EffectGuide, clips: list, per_band: int = 2) -> dict[str, float]:
    """Accuracy per noise band: each clip noised at ``per_band`` random timesteps of each band (fixed draws)."""
    g = torch.Generator().manual_seed(0)
    labels = labels_of(clips, model.config.classes)
    scheduler = training_scheduler()
    acc = {}
    for lo, hi in T_BUCKETS:
        right = 0
        for _ in range(per_band):
            for i in range(0, len(clips), 64):
                part = clips[i : i + 64]
                t = torch.randint(lo, hi, (len(part),), generator=g)
                zt, ref, mask = noisy_inputs(part, t, model.config.frame_noise_correlation, g, scheduler)
                right += int((model(zt, t, ref, mask).argmax(1) == labels[i : i + 64]).sum())
        acc[f"{lo}-{hi - 1}"] = round(right / (per_band * len(clips)), 4)
    return acc


def save_effect_guide(model: EffectGuide, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / WEIGHTS))
    (folder / CONFIG).write_text(json.dumps(asdict(model.config), indent=2))
    return folder


def load_effect_guide(path: str | Path) -> EffectGuide:
    """A guide saved by ``train_effect_guide`` (a folder, or a name under ``models/``)."""
    from studio.paths import model_path

    folder = model_path(str(path))
    cfg = json.loads((folder / CONFIG).read_text())
    model = EffectGuide(EffectGuideConfig(**{**cfg, "classes": tuple(cfg["classes"])}))
    model.load_state_dict(load_file(str(folder / WEIGHTS)))
    return model.eval()


def effect_log_prob_fn(guide: EffectGuide) -> Callable[[torch.Tensor, torch.Tensor, dict[str, Any]], torch.Tensor]:
    """For ``studio.diffusion.ClassifierGuide``: (z_t, t, cond) → log p(requested effect | z_t), (B,)."""

    def fn(x: torch.Tensor, t: torch.Tensor, cond: dict[str, Any]) -> torch.Tensor:
        names = guide.config.classes
        unknown = [e for e in cond["effect"] if e not in names]
        if unknown:
            raise ValueError(f"effect: {unknown[0]!r} is not one the effect guide knows ({', '.join(names)})")
        y = torch.tensor([names.index(e) for e in cond["effect"]], device=x.device)
        logp = guide(x, t, cond["ref"], cond.get("mask")).float().log_softmax(1)
        return logp.gather(1, y[:, None])[:, 0]

    return fn


def card(folder: Path) -> str:
    """MODEL_CARD.md text from the record saved beside the weights."""
    rec = json.loads((folder / RECORD).read_text())
    cfg = json.loads((folder / CONFIG).read_text())
    bands = " | ".join(f"{v:.3f}" for v in rec["val_accuracy_by_t"].values())
    return "\n".join([
        "# vfx-effect-guide",
        "",
        "A noise-aware effect classifier p(effect | z_t, t, reference, mask) for classifier guidance of the vfx "
        "sampler (`--effect-guidance`; Dhariwal & Nichol 2021) and for choosing among starting noises "
        "(`--noise-candidates`). Code: `studio/tasks/vfx/effect_guide.py`.",
        "",
        f"- data: Open-VFX-mini, procedural clips 0–{rec['train_clips'] - 1} of seed {rec['train_seed']} (the "
        f"adapters train on the first 3000 of the same seed), all {len(cfg['classes'])} effects; noised as the "
        f"diffusion model's input (VP cosine schedule, frame-correlated noise ρ = "
        f"{cfg['frame_noise_correlation']}), timesteps uniform in 0–999; "
        f"the mask replaced by the whole frame for {cfg['mask_dropout']:.0%} of inputs",
        f"- model: 4 FiLM'd 3D conv blocks, width {cfg['width']}, "
        f"{sum(p.numel() for p in load_effect_guide(folder).parameters()):,} parameters",
        f"- training: {rec['steps']} steps of batch {rec['batch']}, AdamW one-cycle lr {rec['lr']}, bf16 autocast, "
        f"{rec['seconds']:.0f} s on 2 CPU cores",
        f"- not the evaluation's classifier (`models/vfx-base/effect_classifier.safetensors`: clean clips of "
        f"seeds 1000/2000)",
        "",
        f"Accuracy on {rec['val_clips']} clips of seed {rec['val_seed']} (no run trains on it), by the timestep the "
        f"clip is noised to (chance {1 / len(cfg['classes']):.3f}):",
        "",
        "| " + " | ".join(f"t {k}" for k in rec["val_accuracy_by_t"]) + " |",
        "|" + "---|" * len(rec["val_accuracy_by_t"]),
        f"| {bands} |",
        "",
        "![loss](loss_curve.png)",
        "",
        "What it buys when sampling (effect accuracy, timing, mask precision on validation clips): "
        "`docs/benchmarks/vfx_effect_guidance.md` and `vfx_effect_guidance_scope.md`; on the eval's held-out clips: "
        "`docs/benchmarks/vfx.md`.",
        "",
        "Reproduce: `python scripts/train_vfx.py --effect-guide models/vfx-effect-guide --threads 2`.",
        "",
    ])
