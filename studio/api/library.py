"""The asset library as front-ends show it: starter models and adapters with their cards."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from studio import paths

MODEL_CARD = "MODEL_CARD.md"
ADAPTER_CARD = "ADAPTER_CARD.md"


def _size(d: Path) -> int:
    return sum(f.stat().st_size for f in d.rglob("*") if f.is_file())


def _read_card(path: Path, limit: int = 20_000) -> str:
    return path.read_text(errors="replace")[:limit] if path.is_file() else ""


def list_models(root: Path | None = None) -> list[dict[str, Any]]:
    """Every ``models/<name>/`` holding a ``config.json`` (a checkpoint folder), by name."""
    base = Path(root) if root is not None else paths.models_dir()
    if not base.is_dir():
        return []
    found = []
    for d in sorted(base.iterdir()):
        if d.name.startswith(".") or not (d / "config.json").is_file():
            continue
        try:
            config = json.loads((d / "config.json").read_text())
        except (OSError, ValueError):
            config = {}
        found.append({"name": d.name, "path": str(d), "size_bytes": _size(d),
                      "class": config.get("_class_name", ""), "card": _read_card(d / MODEL_CARD)})
    return found


def list_adapter_entries(root: Path | None = None) -> list[dict[str, Any]]:
    from studio.lora.files import list_adapters

    entries = []
    for info in list_adapters(root):
        entries.append({"name": info.name, "path": str(info.path), "type": info.type, "base": info.base,
                        "rank": info.rank, "size_bytes": info.size_bytes, "metadata": info.metadata,
                        "card": _read_card(Path(info.path) / ADAPTER_CARD)})
    return entries
