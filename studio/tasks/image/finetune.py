"""LoRA fine-tuning of a shipped image model on a folder of images + same-name captions.

The base model is frozen; a peft LoRA (``studio.lora``) on the attention projections and MLPs is
trained with the base model's own diffusion loss through the shared Trainer (checkpoints, resume,
sample prompts during training). A trigger word is prepended to captions that lack it, so the
style is called up by name at generation time.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from pydantic import Field

from studio.tasks.image.train import DataSection, DiffusionObjective, ImageDataset, load_data
from studio.tasks.image.text_cache import build_bank
from studio.train.config import Section, TrainConfig, load_config


class LoraSection(Section):
    name: str = Field(..., min_length=1, description="Adapter name (folder under adapters/).")
    base: str = Field("image-lit", description="Base model name or folder.")
    rank: int = Field(8, ge=1, le=256)
    alpha: float | None = None
    targets: list[str] = ["to_q", "to_k", "to_v", "to_out", "fc1", "fc2"]
    trigger: str = Field("", description="Prepended to every caption that does not contain it.")
    sample_prompts: list[str] = []
    export_to: str | None = Field(None, description="Adapter folder to write (default: adapters/<name>).")
    caption_dropout: float = Field(0.05, ge=0, lt=1)


class LoraTrainConfig(TrainConfig):
    lora: LoraSection
    data: DataSection = DataSection()


def _with_trigger(captions: list[str], trigger: str) -> list[str]:
    if not trigger:
        return list(captions)
    return [c if trigger in c else f"{trigger}, {c}" for c in captions]


def main(config_path: str | Path, overrides: dict | None = None) -> dict:
    from studio.core.checkpoint import load_model
    from studio.core.dit import DiT
    from studio.lora import add_lora, save_adapter, set_model_id
    from studio.paths import adapters_dir, model_path
    from studio.tasks.image.pipeline import generate_arrays, save_grid
    from studio.train import Trainer

    cfg = load_config(config_path, LoraTrainConfig, overrides)
    lc = cfg.lora
    t0 = time.time()
    data = load_data(cfg.data)
    data.captions = _with_trigger(data.captions, lc.trigger)
    prompts = _with_trigger(lc.sample_prompts, lc.trigger)
    bank = build_bank(data.captions + prompts, cfg.data.cache_dir)
    model = load_model(DiT, model_path(lc.base), dtype=torch.float32)
    set_model_id(model, Path(lc.base).name)
    add_lora(model, lc.name, rank=lc.rank, alpha=lc.alpha, targets=lc.targets)
    objective = DiffusionObjective(bank, lc.caption_dropout, seed=cfg.seed)

    def sample_fn(m, step, folder):
        if prompts:
            save_grid(generate_arrays(m, bank, prompts, size=cfg.data.size, steps=20, guidance=3.0, seed=0),
                      folder / "preview.png")

    result = Trainer(model, objective, ImageDataset(data, bank), cfg, sample_fn=sample_fn).train()
    out = Path(lc.export_to) if lc.export_to else adapters_dir() / lc.name
    record = {"dataset": cfg.data.source if cfg.data.source != "procedural" else f"procedural shapes, fill={cfg.data.fill}, n={cfg.data.n}",
              "steps": result.step, "trigger": lc.trigger, "final_loss": result.loss,
              "wall_s": round(time.time() - t0, 1), "training_config": cfg.to_json_dict()}
    save_adapter(model, lc.name, out, record, dtype=torch.bfloat16)
    if result.loss_curve:
        import shutil

        shutil.copy(result.loss_curve, out / "loss_curve.png")
    return {k: v for k, v in record.items() if k != "training_config"} | {"adapter": str(out)}
