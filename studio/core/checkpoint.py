"""Model checkpoints as ``config.json`` + ``diffusion_pytorch_model.safetensors`` (diffusers' file
shape, so ``DiT.from_pretrained(dir)`` reads them too), an optional bf16 save, metadata in the
safetensors header, and a content hash that identifies the weights.

The hash covers tensor names, dtypes, shapes and bytes — not the header metadata — so re-saving the
same weights with a different training note keeps the identity adapters are bound to.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Mapping

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from studio._fs import atomic_path

WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"
CONFIG_NAME = "config.json"


class CheckpointError(ValueError):
    """A checkpoint directory is missing a file or does not fit the model class."""


def save_model(
    model: torch.nn.Module,
    dir: str | os.PathLike,
    dtype: torch.dtype | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``config.json`` and the weights (cast to ``dtype`` if given) atomically into ``dir``."""
    out = Path(dir)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {k: _cast(v, dtype) for k, v in model.state_dict().items()}
    header = {k: v if isinstance(v, str) else json.dumps(v) for k, v in (metadata or {}).items()}
    header["content_hash"] = state_dict_hash(tensors)
    _atomic(out / WEIGHTS_NAME, lambda p: save_file(tensors, p, metadata=header))
    config = {"_class_name": type(model).__name__, **model_config(model)}
    _atomic(out / CONFIG_NAME, lambda p: Path(p).write_text(json.dumps(config, indent=2, default=str)))
    return out


def load_model(cls: type, dir: str | os.PathLike, device: str | torch.device = "cpu", dtype: torch.dtype | None = None):
    """Build ``cls`` from ``config.json`` and load the weights strictly; returns it in eval mode."""
    src = Path(dir)
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        if not (src / name).exists():
            raise CheckpointError(f"{src / name}: missing (a checkpoint is {CONFIG_NAME} + {WEIGHTS_NAME})")
    config = json.loads((src / CONFIG_NAME).read_text())
    saved_class = config.get("_class_name")
    if saved_class and saved_class != cls.__name__:
        raise CheckpointError(f"{src}: holds a {saved_class}, not a {cls.__name__}")
    kwargs = {k: v for k, v in config.items() if not k.startswith("_")}
    model = cls.from_config(kwargs) if hasattr(cls, "from_config") else cls(**kwargs)
    missing, unexpected = model.load_state_dict(load_file(src / WEIGHTS_NAME), strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{src}: weights do not fit {cls.__name__}: missing {missing[:5]}, unexpected {unexpected[:5]}")
    # nn.Module.to, not ModelMixin.to: diffusers warns on every dtype cast of a model it did not load
    return torch.nn.Module.to(model, device=device, dtype=dtype).eval()


def read_metadata(dir_or_file: str | os.PathLike) -> dict[str, str]:
    with safe_open(str(_weights_file(Path(dir_or_file))), framework="pt") as f:
        return dict(f.metadata() or {})


def content_hash(path: str | os.PathLike) -> str:
    """sha256 of the tensors in a checkpoint directory or ``.safetensors`` file (hex)."""
    with safe_open(str(_weights_file(Path(path))), framework="pt") as f:
        return state_dict_hash({k: f.get_tensor(k) for k in f.keys()})


def state_dict_hash(state: Mapping[str, torch.Tensor]) -> str:
    """sha256 over sorted (name, dtype, shape, bytes); equal to :func:`content_hash` of its file."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(f"{name}|{str(t.dtype)}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def model_config(model: torch.nn.Module) -> dict[str, Any]:
    """Constructor arguments of ``model``: diffusers ``config``, a dataclass or a dict ``config``."""
    config = getattr(model, "config", None)
    if config is None:
        return {}
    if dataclasses.is_dataclass(config):
        return dataclasses.asdict(config)
    return {k: v for k, v in dict(config).items() if not k.startswith("_")}


def _cast(t: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
    t = t.detach()
    if dtype is not None and t.is_floating_point():
        t = t.to(dtype)
    return t.contiguous().clone()  # clone: safetensors refuses tensors that share storage


def _weights_file(path: Path) -> Path:
    """The weights of a model folder, an adapter folder (peft's ``adapter_model.safetensors``),
    a folder holding one ``.safetensors`` file, or a file given directly."""
    f = path
    if path.is_dir():
        candidates = [path / WEIGHTS_NAME, path / "adapter_model.safetensors"]
        f = next((c for c in candidates if c.exists()), None) or _only_safetensors(path)
    if not f.exists():
        raise CheckpointError(f"{f}: no safetensors weights here")
    return f


def _only_safetensors(folder: Path) -> Path:
    found = sorted(folder.glob("*.safetensors"))
    return found[0] if len(found) == 1 else folder / WEIGHTS_NAME


def _atomic(target: Path, write) -> None:
    with atomic_path(target) as tmp:
        write(str(tmp))
