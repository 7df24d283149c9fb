"""What a style LoRA does, measured: FD of the base's generations without → with the adapter.

For a procedural style (``fill`` = outline / shaded) the held-out prompts carry the adapter's
trigger; both generations use the same seeds. Distances are taken to real images of that style
and to real images of the base's own style (solid fills) in the evaluation classifier's feature
space, so a working adapter moves its FD down against its style and up against the base's.
Writes ``samples.png`` (row 1 base, row 2 with the adapter, row 3 real styled images) and the
"What it does (measured)" section of the adapter's card.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import torch

SECTION = "## What it does (measured)"


def measure(adapter: str = "image-outline", n: int = 64, steps: int = 20, guidance: float = 3.0,
            write: bool = True) -> dict:
    from studio.core.checkpoint import load_model
    from studio.core.dit import DiT
    from studio.lora import load_adapter, read_metadata, resolve_adapter_dir, set_model_id
    from studio.paths import model_path
    from studio.tasks.image.data import make_split
    from studio.tasks.image.metrics import EVAL_SEED, fd, get_classifier
    from studio.tasks.image.pipeline import generate_arrays, save_grid

    folder = resolve_adapter_dir(adapter)
    meta = read_metadata(folder)  # values are strings; the training config is JSON
    cfg = json.loads(meta.get("training_config") or "{}")
    base = meta.get("base_model_id") or cfg.get("lora", {}).get("base", "image-lit")
    fill = (cfg.get("data") or {}).get("fill", "outline")
    trigger = meta.get("trigger", "")
    styled = make_split("heldout", n, seed=EVAL_SEED, fill=fill, trigger=trigger)
    solid = make_split("heldout", n, seed=EVAL_SEED)
    classifier = get_classifier()
    model = load_model(DiT, model_path(base), dtype=torch.float32).eval()
    set_model_id(model, base)

    def generate() -> np.ndarray:  # same prompts, same seeds
        return np.concatenate([generate_arrays(model, None, styled.captions[i:i + 32], size=32, steps=steps,
                                               guidance=guidance, seed=2000 + i) for i in range(0, n, 32)])

    without = generate()
    load_adapter(model, str(folder), weight=1.0)
    with_ = generate()
    result = {"adapter": folder.name, "base": base, "fill": fill, "prompts": n,
              "train_images": (cfg.get("data") or {}).get("n", "?"),
              "fd_styled": {"without": fd(classifier, without, styled.images), "with": fd(classifier, with_, styled.images)},
              "fd_solid": {"without": fd(classifier, without, solid.images), "with": fd(classifier, with_, solid.images)}}
    if write:
        save_grid(np.concatenate([without[:8], with_[:8], styled.images[:8]]), folder / "samples.png", cols=8, scale=3)
        _write_section(folder / "ADAPTER_CARD.md", result, meta, steps, guidance)
    return result


def _write_section(card: Path, r: dict, meta: dict, steps: int, guidance: float) -> None:
    text = card.read_text() if card.exists() else f"# Adapter `{r['adapter']}`\n"
    text = re.split(rf"\n{re.escape(SECTION)}\n", text)[0].rstrip() + "\n"
    lines = [
        "", SECTION, "",
        f"Trained with `python scripts/finetune_image_lora.py --config datasets/image/lora_{r['fill']}.toml` "
        f"({r['train_images']} procedural images drawn with fill = {r['fill']}, captions prefixed with the trigger "
        f"\"{meta.get('trigger', '')}\"; {meta.get('steps', '?')} steps on `{r['base']}`). An adapter records "
        "its base's weight hash and is refused on any other base.",
        "",
        f"Measured by `python scripts/eval_image_lora.py {r['adapter']}`: Fréchet distance (evaluation-classifier "
        f"features, {r['prompts']} held-out {r['fill']}-style prompts, DPM-Solver++ {steps} steps, guidance {guidance}, "
        f"same seeds) of `{r['base']}` generations without → with this adapter at weight 1.0:",
        "",
        "| reference set | without | with |",
        "|---|---|---|",
        f"| real {r['fill']}-style images | {r['fd_styled']['without']:.1f} | **{r['fd_styled']['with']:.1f}** |",
        f"| real solid-fill images (the base's style) | {r['fd_solid']['without']:.1f} | {r['fd_solid']['with']:.1f} |",
        "",
        "`samples.png`: row 1 the base, row 2 with the adapter, row 3 real images of the style.",
        "",
    ]
    card.write_text(text + "\n".join(lines))
