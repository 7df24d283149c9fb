"""A small class-conditional base DiT for Diffscaler, pretrained on the shared shapes scenes.

Diffscaler needs a *pretrained* frozen base. The image task's DiT is text-conditioned and sized
for its own training budget; this base is the class-conditional fallback the eval can afford to
fine-tune 12 times on a shared 2-core CPU: one filled shape (class = shape kind) on a dark
textured background, the distribution the target datasets then move away from.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from studio.data.shapes import SHAPES, random_scene, draw_scene
from studio.tasks.diffscaler.data import ImageSet
from studio.tasks.diffscaler.train import FinetuneSpec, MethodSpec, denoising_loop

BASE_NAME = "diffscaler-base"
BASE_CONFIG = dict(sample_size=32, patch_size=4, in_channels=3, hidden_size=96, depth=4, num_heads=4,
                   mlp_ratio=4.0, learn_sigma=True, num_classes=len(SHAPES), class_dropout_prob=0.0)


def shapes_dataset(n: int, seed: int = 0, size: int = 32) -> ImageSet:
    """One shape per image (solid or shaded), class = its kind, on the shapes' dark backgrounds."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for _ in range(n):
        scene = random_scene(rng, count=1, fill=str(rng.choice(["solid", "shaded"])), size_range=(0.4, 0.7))
        images.append(draw_scene(scene, size)[0])
        labels.append(SHAPES.index(scene.objects[0].shape))
    return ImageSet("shapes", np.stack(images), np.array(labels, np.int64), SHAPES)


def pretrain(out_dir: Path, steps: int = 1500, batch_size: int = 32, n_images: int = 4096, lr: float = 3e-4,
             seed: int = 0, log_every: int = 100, resume: bool = False) -> dict:
    """Train the base (from scratch, or ``resume`` from ``out_dir``) and save it (diffusers layout:
    config.json + safetensors + card)."""
    from studio.core.dit import DiT

    torch.manual_seed(seed)
    previous = _previous_steps(out_dir) if resume else 0
    model = DiT.from_pretrained(str(out_dir)) if resume else DiT(**BASE_CONFIG)
    data = shapes_dataset(n_images, seed)
    spec = FinetuneSpec("shapes", MethodSpec("full", lr=lr), steps=steps, batch_size=batch_size, warmup=100,
                        seed=seed)
    log_path = Path(out_dir) / "train_log.jsonl"  # appended across resumed runs
    log_path.parent.mkdir(parents=True, exist_ok=True)

    def log(step: int, loss: float) -> None:
        if step % log_every == 0 or step == steps - 1:
            with log_path.open("a") as f:
                f.write(json.dumps({"step": step, "loss": loss, "time": time.time()}) + "\n")

    model.train()
    stats = denoising_loop(lambda xt, t, y: model(xt, t, y=y), list(model.parameters()), data, spec,
                           null_label=len(SHAPES), log=log)
    model.eval()
    out_dir = Path(out_dir)
    model.save_pretrained(str(out_dir), safe_serialization=True)
    total = previous + steps
    (out_dir / "train_state.json").write_text(json.dumps({"steps": total, "last_run": {"steps": steps, "lr": lr}}))
    card = (f"# {BASE_NAME}\n\nClass-conditional DiT (hidden {BASE_CONFIG['hidden_size']}, depth "
            f"{BASE_CONFIG['depth']}, patch {BASE_CONFIG['patch_size']}, learned σ) pretrained from scratch as "
            f"Diffscaler's frozen base.\n\n- data: {n_images} procedural 32 px images, one filled shape "
            f"(classes: {', '.join(SHAPES)}) on dark textured backgrounds (`studio.data.shapes`)\n"
            f"- training: {total} steps in all (this run: {steps} steps, AdamW lr {lr}), batch {batch_size}, "
            "10% label dropout (CFG)\n"
            f"- wall time of this run: {stats['seconds'] / 60:.1f} min on a shared 2-core CPU (1 thread)\n"
            f"- final training loss: {stats['final_loss']:.4f}\n"
            f"- parameters: {sum(p.numel() for p in model.parameters()):,}\n"
            "- made by: `python scripts/finetune_diffscaler.py --pretrain-base`\n")
    (out_dir / "MODEL_CARD.md").write_text(card)
    return stats


def _previous_steps(out_dir: Path) -> int:
    state = Path(out_dir) / "train_state.json"
    return int(json.loads(state.read_text())["steps"]) if state.is_file() else 0
