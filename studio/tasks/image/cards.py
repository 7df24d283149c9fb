"""Model cards for the shipped image models: data, steps, wall time and the measured metrics."""

from __future__ import annotations

import json
from pathlib import Path

from studio.paths import model_path

_ROLE = {
    "image-dit": "DiT teacher: softmax self-attention, adaLN-Zero, learned σ, MiniLM token cross-attention + pooled vector.",
    "image-lit": "LiT student: the teacher's config with every self-attention replaced by linear attention "
                 "(ReLU kernel, 2 heads, 5×5 depthwise conv on V); inherited every teacher weight except the "
                 "self-attention Q/K/V/out projections, then trained with L_simple + L_vlb + 0.5‖ε_T−ε_S‖² + 0.05‖Σ_T−Σ_S‖².",
}
_CONFIG = {"image-dit": "datasets/image/teacher.toml", "image-lit": "datasets/image/lit.toml"}


def write_card(name: str, metrics: dict, scores: dict | None = None) -> Path:
    folder = model_path(name)
    cfg = json.loads((folder / "config.json").read_text())
    rec = json.loads((folder / "train_record.json").read_text()) if (folder / "train_record.json").exists() else {}
    s = (scores or {}).get(name, {})
    lines = [
        f"# {name}", "", _ROLE[name], "",
        "## Architecture", "",
        f"- {cfg['depth']} blocks, hidden {cfg['hidden_size']}, patch {cfg['patch_size']}, sample size {cfg['sample_size']} px RGB "
        f"(pixel space), attention `{cfg['attention']}`" + (f" with {cfg['linear_heads']} heads" if cfg["attention"] == "linear" else f" with {cfg['num_heads']} heads"),
        "- text: all-MiniLM-L6-v2 token states (cross-attention) + pooled vector (added to the timestep embedding)",
        "- weights: bf16 safetensors (`diffusion_pytorch_model.safetensors`), config in `config.json`", "",
        "## Training", "",
        f"- data: the procedural captioned shapes set (`studio.tasks.image.data`, train split, seed 0): "
        f"{rec.get('train_images', '?')} images at 32 px, {rec.get('unique_captions', '?')} distinct captions; "
        "7 shapes × 8 colours × 2 sizes × 1–3 objects × 5 positions × 5 textures × 9 background colours; "
        "8 (shape, colour) pairs held out entirely",
        f"- steps: {rec.get('steps', '?')} (batch 64, AdamW, EMA), DDPM 1000-step linear β schedule, caption dropout 0.1",
        f"- wall time: {rec.get('wall_s', '?')} s on a 2-core CPU" + (f" ({rec['wall_note']})" if rec.get("wall_note") else ""),
        f"- config: `{_CONFIG[name]}`; loss curve: `loss_curve.png`", "",
        "## Measured (`studio eval image`, 32 px, DPM-Solver++ 20 steps, guidance 3)", "",
    ]
    if s:
        lines += [f"- prompt accuracy on held-out captions (shape, colour and count all right): {s['acc_heldout']['all']:.3f} "
                  f"(shape {s['acc_heldout']['shape']:.3f}, colour {s['acc_heldout']['colour']:.3f}, count {s['acc_heldout']['count']:.3f})",
                  f"- prompt accuracy on unseen (shape, colour) combinations: {s['acc_unseen']['all']:.3f}",
                  f"- Fréchet distance (classifier features) to held-out real images: {s['fd']:.3f}"]
    lines += [f"- LiT/DiT forward time at 4096 tokens: {metrics.get('lit_time_ratio_vs_dit_4096') or float('nan'):.3f}",
              "", "Full tables: `docs/benchmarks/image.md`.", ""]
    path = folder / "MODEL_CARD.md"
    path.write_text("\n".join(lines))
    return path
