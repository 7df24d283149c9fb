"""Training the image models with the shared Trainer: the DiT teacher, then the LiT student.

``main(config_path)`` reads an :class:`ImageTrainConfig` (TOML/YAML) and runs one stage:

- ``model.role = "teacher"``: a DiT with softmax attention, loss ``L_simple + L_vlb`` (learned σ);
- ``model.role = "student"``: LiT (linear attention) initialised from ``model.teacher`` (``init =
  "inherit"``: every weight but the self-attention projections; ``"scratch"``: fresh) and trained
  with ``L_simple + L_vlb + kd.eps‖ε_T − ε_S‖² + kd.sigma‖Σ_T − Σ_S‖²`` (``kd`` weights 0 = no KD).

Captions are dropped (→ "") with probability ``caption_dropout`` so the model also learns the
unconditional branch for classifier-free guidance. Weight snapshots are taken every
``samples.every`` steps (with a preview grid) so evaluation can follow quality over training.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Literal

import torch
from pydantic import Field

from studio.diffusion import DDPMTraining, KDWeights, hybrid_kd_terms
from studio.tasks.image.data import ImageSet, import_folder, make_split
from studio.tasks.image.text_cache import CaptionBank, build_bank
from studio.train.config import Section, TrainConfig, load_config


class ModelSection(Section):
    role: Literal["teacher", "student"] = "teacher"
    preset: str = "image-tiny"
    sample_size: int = Field(32, ge=8)
    linear_heads: int = Field(2, ge=1)
    teacher: str | None = Field(None, description="Teacher checkpoint folder (student only).")
    init: Literal["inherit", "scratch"] = "inherit"
    export_to: str | None = Field(None, description="Write the final (EMA) weights here as bf16 safetensors.")
    caption_dropout: float = Field(0.1, ge=0, lt=1)


class KDSection(Section):
    eps: float = Field(0.5, ge=0)
    sigma: float = Field(0.05, ge=0)


class DataSection(Section):
    source: str = Field("procedural", description='"procedural" or a folder of images + same-name .txt captions.')
    n: int = Field(6000, ge=1)
    seed: int = Field(0, ge=0)
    size: int = Field(32, ge=8)
    fill: Literal["solid", "outline", "shaded"] = "solid"
    trigger: str = ""
    cache_dir: str = "runs/image/cache"


class ImageTrainConfig(TrainConfig):
    model: ModelSection = ModelSection()
    kd: KDSection = KDSection()
    data: DataSection = DataSection()


class ImageDataset(torch.utils.data.Dataset):
    """(image (3, H, W) in [-1, 1], caption id) pairs; the ids index a :class:`CaptionBank`."""

    def __init__(self, data: ImageSet, bank: CaptionBank):
        self.x = torch.from_numpy(data.images).permute(0, 3, 1, 2).float() / 127.5 - 1  # (N, 3, H, W)
        self.ids = bank.ids(data.captions)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int):
        return self.x[i], self.ids[i]


def load_data(cfg: DataSection) -> ImageSet:
    if cfg.source == "procedural":
        return make_split("train", cfg.n, cfg.seed, cfg.size, fill=cfg.fill, trigger=cfg.trigger)
    return import_folder(cfg.source, cfg.size)


class DiffusionObjective:
    """One denoising loss evaluation per batch; with a teacher, LiT's hybrid KD on top."""

    def __init__(self, bank: CaptionBank, caption_dropout: float, teacher=None, kd: KDWeights | None = None,
                 seed: int = 0):
        self.bank, self.p_drop, self.teacher, self.kd = bank, caption_dropout, teacher, kd
        self.ddpm = DDPMTraining(seed + 12345)

    def __call__(self, model, batch):
        x0, ids = batch
        drop = self.ddpm.dropped(x0.shape[0], self.p_drop)
        ids = torch.where(drop, torch.zeros_like(ids.cpu()), ids.cpu())  # id 0 = "" (unconditional)
        cond = self.bank.lookup(ids, x0.device)
        xt, t, noise = self.ddpm.noised(x0)
        out = model(xt, t, **cond)  # (B, 6, H, W): ε and σ-interpolation
        loss, logs = self.ddpm.loss(out, x0, xt, t, noise)
        if self.teacher is not None and self.kd is not None and (self.kd.eps or self.kd.sigma):
            with torch.no_grad():
                t_out = self.teacher(xt, t, **cond)
            kd_loss, kd_logs = hybrid_kd_terms(out, t_out, x0.shape[1], self.kd)
            loss = loss + kd_loss
            logs.update(kd_logs)
        return loss, logs


def build_model(cfg: ImageTrainConfig):
    """(model to train, teacher or None, inheritance report or None)."""
    from studio.core.checkpoint import load_model
    from studio.core.dit import DiT
    from studio.tasks.image.model import image_dit, make_student

    m = cfg.model
    torch.manual_seed(cfg.seed)
    if m.role == "teacher":
        return image_dit(m.preset, "sdpa", m.sample_size), None, None
    if not m.teacher:
        raise ValueError("model.teacher: a student needs the teacher checkpoint folder")
    teacher = load_model(DiT, m.teacher, dtype=torch.float32).eval().requires_grad_(False)
    student, report = make_student(teacher, m.linear_heads, inherit=m.init == "inherit", seed=cfg.seed)
    return student, teacher, report


def snapshot_fn(bank: CaptionBank, prompts: list[str], size: int):
    """Trainer sample callback: save the weights (for quality-over-steps evaluation) and a preview grid."""

    def fn(model, step: int, folder: Path) -> None:
        from studio.core.checkpoint import save_model
        from studio.tasks.image.pipeline import generate_arrays, save_grid

        save_model(model, folder / "model", dtype=torch.bfloat16, metadata={"step": step})
        imgs = generate_arrays(model, bank, prompts, size=size, steps=20, guidance=3.0, seed=0)
        save_grid(imgs, folder / "preview.png")

    return fn


PREVIEW_PROMPTS = [
    "a large red circle in the center on a plain gray background",
    "two small blue squares on a striped green background",
    "three small yellow stars on a checkered purple background",
    "a large green triangle in the top left on a dotted blue background",
]


def main(config_path: str | Path, overrides: dict | None = None) -> dict:
    from studio.core.checkpoint import save_model
    from studio.train import Trainer

    cfg = load_config(config_path, ImageTrainConfig, overrides)
    t0 = time.time()
    data = load_data(cfg.data)
    prompts = PREVIEW_PROMPTS if cfg.data.source == "procedural" else data.captions[:4]
    if cfg.data.trigger and cfg.data.source == "procedural":
        prompts = [f"{cfg.data.trigger}, {p}" for p in prompts]
    bank = build_bank(list(data.captions) + prompts, cfg.data.cache_dir)
    model, teacher, report = build_model(cfg)
    if report is not None:
        print(report.summary(), flush=True)
    kd = KDWeights(cfg.kd.eps, cfg.kd.sigma) if teacher is not None else None
    objective = DiffusionObjective(bank, cfg.model.caption_dropout, teacher, kd, cfg.seed)
    trainer = Trainer(model, objective, ImageDataset(data, bank), cfg,
                      sample_fn=snapshot_fn(bank, prompts, cfg.data.size))
    result = trainer.train()
    record = {"steps": result.step, "final_loss": result.loss, "wall_s": round(time.time() - t0, 1),
              "train_images": len(data), "unique_captions": len(bank.captions) - 1,
              "inherit": None if report is None else {"loaded": len(report.loaded), "new": report.new}}
    if cfg.model.export_to:
        with trainer.ema_weights() as final:
            save_model(final, cfg.model.export_to, dtype=torch.bfloat16,
                       metadata={"steps": result.step, "role": cfg.model.role, "init": cfg.model.init})
        (Path(cfg.model.export_to) / "train_record.json").write_text(json.dumps(record, indent=2))
    (Path(cfg.output_dir) / "train_record.json").write_text(json.dumps(record, indent=2))
    return record
