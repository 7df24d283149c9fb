"""Adapter folders on disk: peft's layout plus Studio's training record.

An adapter is a folder ``<name>/`` holding

- ``adapter_config.json``  — the adapter's config (peft's ``LoraConfig`` for LoRA; another adapter
  type such as Diffscaler's affiner writes its own dict with a ``studio_type`` key),
- ``adapter_model.safetensors`` — the weights, with the training record as safetensors header
  metadata (string values; keys in ``METADATA_KEYS``),
- ``ADAPTER_CARD.md`` — a short human-readable card.

This module knows nothing about peft or torch modules: it writes and reads these folders, so every
adapter type (LoRA, affiner) shares one format and one listing. Writes go to a temporary sibling
folder that is renamed into place, so a crash never leaves a half-written adapter.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"
CARD_NAME = "ADAPTER_CARD.md"

# Header keys every Studio adapter carries (all values are strings in a safetensors header).
METADATA_KEYS = (
    "base_model_id",
    "base_model_hash",
    "adapter_type",
    "rank",
    "alpha",
    "targets",
    "dataset",
    "steps",
    "studio_version",
)


class AdapterNotFound(FileNotFoundError):
    """No adapter folder with that name under the adapters directory, nor at that path."""


@dataclass
class AdapterInfo:
    """One adapter on disk, as ``list_adapters`` reports it."""

    name: str
    path: Path
    type: str
    base: str
    rank: int | None
    size_bytes: int
    metadata: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": str(self.path),
            "type": self.type,
            "base": self.base,
            "rank": self.rank,
            "size_bytes": self.size_bytes,
            "metadata": dict(self.metadata),
        }


def header_metadata(record: Mapping[str, Any]) -> dict[str, str]:
    """Flatten a training record into safetensors header strings (lists/dicts become JSON)."""
    out: dict[str, str] = {}
    for key, value in record.items():
        if value is None:
            continue
        out[str(key)] = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return out


def write_adapter_dir(
    directory: str | os.PathLike,
    tensors: Mapping[str, Any],
    config: Mapping[str, Any],
    metadata: Mapping[str, Any],
    card: str,
) -> Path:
    """Write config + weights (with header metadata) + card into ``directory`` atomically."""
    from safetensors.torch import save_file

    target = Path(directory)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        (tmp / CONFIG_NAME).write_text(json.dumps(dict(config), indent=2, sort_keys=True, default=_json_default))
        # safetensors refuses views/non-contiguous tensors; adapters are small so a copy is cheap
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp / WEIGHTS_NAME),
                  metadata={"format": "pt", **header_metadata(metadata)})
        (tmp / CARD_NAME).write_text(card)
        _replace_dir(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (set, frozenset, tuple)):
        return sorted(obj) if isinstance(obj, (set, frozenset)) else list(obj)
    if hasattr(obj, "value"):  # enums such as peft's PeftType / TaskType
        return obj.value
    return str(obj)


def _replace_dir(src: Path, dst: Path) -> None:
    """Move ``src`` onto ``dst``; an existing ``dst`` is swapped out first, then removed."""
    if dst.exists():
        old = dst.with_name(f".{dst.name}.old-{os.getpid()}")
        os.replace(dst, old)
        os.replace(src, dst)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(src, dst)


def resolve_adapter_dir(name_or_path: str | os.PathLike, root: str | os.PathLike | None = None) -> Path:
    """An adapter folder by path, or by name under ``root`` (default ``studio.paths.adapters_dir()``)."""
    p = Path(name_or_path)
    if (p / WEIGHTS_NAME).is_file():
        return p
    from studio.paths import adapters_dir

    base = Path(root) if root is not None else adapters_dir()
    q = base / str(name_or_path)
    if (q / WEIGHTS_NAME).is_file():
        return q
    known = ", ".join(i.name for i in list_adapters(base)) or "none"
    raise AdapterNotFound(f"adapter {str(name_or_path)!r} not found (as a path, or under {base}; known: {known})")


def read_config(directory: str | os.PathLike) -> dict[str, Any]:
    return json.loads((Path(directory) / CONFIG_NAME).read_text())


def read_metadata(directory: str | os.PathLike) -> dict[str, str]:
    """The safetensors header metadata (reads only the header, not the tensors)."""
    from safetensors import safe_open

    with safe_open(str(Path(directory) / WEIGHTS_NAME), framework="pt") as f:
        return dict(f.metadata() or {})


def read_tensors(directory: str | os.PathLike) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(str(Path(directory) / WEIGHTS_NAME))


def adapter_info(directory: str | os.PathLike) -> AdapterInfo:
    d = Path(directory)
    meta = read_metadata(d)
    config = read_config(d) if (d / CONFIG_NAME).is_file() else {}
    kind = meta.get("adapter_type") or config.get("studio_type") or str(config.get("peft_type", "unknown")).lower()
    rank = meta.get("rank") or config.get("r")
    size = sum(f.stat().st_size for f in d.iterdir() if f.is_file())
    return AdapterInfo(
        name=d.name,
        path=d,
        type=kind,
        base=meta.get("base_model_id") or config.get("base_model_name_or_path") or "",
        rank=int(rank) if rank not in (None, "") else None,
        size_bytes=size,
        metadata=meta,
    )


def list_adapters(root: str | os.PathLike | None = None) -> list[AdapterInfo]:
    """Every adapter folder directly under ``root`` (default: the studio's ``adapters/``), by name."""
    from studio.paths import adapters_dir

    base = Path(root) if root is not None else adapters_dir()
    if not base.is_dir():
        return []
    found = []
    for d in sorted(base.iterdir()):
        if d.name.startswith(".") or not (d / WEIGHTS_NAME).is_file():
            continue
        found.append(adapter_info(d))
    return found
