"""Shipping and finding Diffscaler adapters: ``adapters/diffscaler-<dataset>/``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from studio.lora.affiner import ADAPTER_TYPE, save_affiner
from studio.tasks.diffscaler.model import DiffscalerNet

PREFIX = "diffscaler-"


def adapter_name(dataset: str) -> str:
    return f"{PREFIX}{dataset}"


def record(net: DiffscalerNet, dataset: str, stats: dict[str, Any], extra: dict[str, Any] | None = None) -> dict:
    """The training record stored in the safetensors header."""
    from studio.tasks.diffscaler import data as ddata

    spec = ddata.PROCEDURAL.get(dataset)
    return {
        "base_model_id": net.info.model_id,
        "base_model_hash": net.info.weights_hash,
        "dataset": dataset,
        "dataset_description": spec.description if spec else "user folder",
        "classes": list(spec.classes) if spec else [],
        "steps": int(stats["steps"]),
        "train_seconds": round(float(stats["seconds"]), 1),
        "final_loss": round(float(stats["final_loss"]), 4),
        "trainable_parameters": int(stats["trainable_parameters"]),
        **(extra or {}),
    }


def card(dataset: str, rec: dict, stats: dict, measured: dict[str, float] | None = None) -> str:
    lines = [
        f"# {adapter_name(dataset)}",
        "",
        f"Diffscaler affiner for the **{dataset}** dataset on the frozen base `{rec['base_model_id']}` "
        f"(weights {rec['base_model_hash'][:12]}).",
        "",
        f"- data: {rec['dataset_description']}; classes: {', '.join(rec['classes']) or 'none'}",
        f"- training: {rec['steps']} steps, {rec['train_seconds']} s wall on a 2-core CPU; "
        f"final loss {rec['final_loss']}",
        f"- trainable parameters: {rec['trainable_parameters']:,}",
    ]
    if measured:
        lines.append("- measured Fréchet distance to held-out images at equal steps "
                     "(docs/benchmarks/diffscaler.md): " + ", ".join(f"{k} {v}" for k, v in measured.items()))
    lines += ["", "Training loss: `loss_curve.png` (when shipped from `studio eval diffscaler`).",
              "", f"Use: `studio generate diffscaler --datasets {dataset}`", ""]
    return "\n".join(lines)


def save(net: DiffscalerNet, dataset: str, out_dir: Path, rec: dict, card_text: str) -> Path:
    return save_affiner(net.tuner, dataset, out_dir, rec, card_text)


def available(root: Path | None = None) -> dict[str, Path]:
    """Datasets with a shipped affiner: dataset name → folder."""
    from studio.lora.files import list_adapters

    return {i.metadata.get("dataset") or i.name.removeprefix(PREFIX): i.path
            for i in list_adapters(root) if i.type == ADAPTER_TYPE}
