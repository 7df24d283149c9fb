"""Adapters: peft LoRA lifecycle, adapter files with a training record, zero-init extension points.

Imports are lazy (PEP 562) so ``import studio.lora`` does not pull in peft or torch until a verb is used.

    from studio.lora import add_lora, save_adapter, load_adapter, set_adapters, merge_adapters
    add_lora(model, "style", rank=8)                    # train it …
    save_adapter(model, "style", "adapters/style", {"dataset": "shapes", "steps": 500})
    load_adapter(other_model, "style", weight=0.7)       # by name from adapters/, or a path
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "add_lora": "peft_lora",
    "save_adapter": "peft_lora",
    "load_adapter": "peft_lora",
    "set_adapters": "peft_lora",
    "merge_adapters": "peft_lora",
    "unload_adapters": "peft_lora",
    "delete_adapter": "peft_lora",
    "adapter_names": "peft_lora",
    "active_adapters": "peft_lora",
    "lora_parameters": "peft_lora",
    "BaseCheck": "peft_lora",
    "DEFAULT_TARGETS": "peft_lora",
    "list_adapters": "files",
    "AdapterInfo": "files",
    "AdapterNotFound": "files",
    "resolve_adapter_dir": "files",
    "read_metadata": "files",
    "write_adapter_dir": "files",
    "AdapterBaseMismatch": "identity",
    "set_model_id": "identity",
    "model_id": "identity",
    "weights_hash": "identity",
    "ZeroInitProjection": "zero_init",
    "ZeroGate": "zero_init",
    "assert_unchanged": "zero_init",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'studio.lora' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"studio.lora.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
