"""Which base model an adapter belongs to: a model id and a hash of the base weights.

The hash covers the *base* weights only (every peft adapter layer's own tensors are skipped and
its ``.base_layer`` indirection is folded away), so it is the same before and after adapters are
injected. Values are hashed as float32, so a bf16 checkpoint loaded in bf16 or in float32 gives the
same hash, while any change to a weight (another training run, a merged adapter) gives another.
"""

from __future__ import annotations

import hashlib

import torch
from torch import nn

_ID_ATTR = "_studio_model_id"


class AdapterBaseMismatch(ValueError):
    """An adapter was trained on another base model than the one it is being loaded onto."""

    def __init__(self, adapter: str, adapter_base: str, adapter_hash: str, model_base: str, model_hash: str):
        super().__init__(
            f"adapter {adapter!r} was trained on base {adapter_base!r} (weights {adapter_hash[:12]}) "
            f"but the model is {model_base!r} (weights {model_hash[:12]})"
        )
        self.adapter = adapter
        self.adapter_base = adapter_base
        self.model_base = model_base


def set_model_id(model: nn.Module, model_id: str) -> nn.Module:
    """Record the model's name (e.g. ``"image-dit-s"``); loaders call this so adapters can name their base."""
    setattr(model, _ID_ATTR, str(model_id))
    return model


def model_id(model: nn.Module) -> str:
    """The recorded id, else a diffusers ``_name_or_path``, else the class name."""
    explicit = getattr(model, _ID_ATTR, None)
    if explicit:
        return explicit
    config = getattr(model, "config", None)
    name = getattr(config, "_name_or_path", None) if config is not None else None
    if isinstance(name, str) and name:
        return name
    return type(model).__name__


def _tuner_layer_prefixes(model: nn.Module) -> list[str]:
    try:
        from peft.tuners.tuners_utils import BaseTunerLayer
    except ImportError:  # no peft, so no adapter layers either
        return []
    return [f"{n}." for n, m in model.named_modules() if isinstance(m, BaseTunerLayer)]


def base_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's base tensors under their un-injected names (no adapter tensors of any peft type).

    Inside a peft tuner layer only its ``base_layer`` counts; that indirection is folded away.
    """
    prefixes = _tuner_layer_prefixes(model)
    out = {}
    for key, value in model.state_dict().items():
        owner = next((p for p in prefixes if key.startswith(p)), None)
        if owner is not None:
            rest = key[len(owner):]
            if not rest.startswith("base_layer."):
                continue  # an adapter's own tensor (lora_A, affiner_a, …)
            key = owner + rest[len("base_layer."):]
        out[key] = value
    return out


def weights_hash(model: nn.Module) -> str:
    """sha256 over (name, shape, float32 bytes) of the base tensors, in name order."""
    h = hashlib.sha256()
    for key, value in sorted(base_state(model).items()):
        h.update(key.encode())
        h.update(str(tuple(value.shape)).encode())
        t = value.detach().to("cpu", torch.float32).contiguous() if value.is_floating_point() else value.detach().cpu()
        h.update(t.numpy().tobytes())
    return h.hexdigest()
