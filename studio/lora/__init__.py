"""Adapters: peft LoRA lifecycle, adapter files with a training record, zero-init extension points.

Imports are lazy (PEP 562) so ``import studio.lora`` does not pull in peft or torch until a verb is used.

    from studio.lora import add_lora, save_adapter, load_adapter, set_adapters, merge_adapters
    add_lora(model, "style", rank=8)                    # train it …
    save_adapter(model, "style", "adapters/style", {"dataset": "shapes", "steps": 500})
    load_adapter(other_model, "style", weight=0.7)       # by name from adapters/, or a path
"""

from __future__ import annotations

from studio._lazy import lazy_exports

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
    "AffinerConfig": "affiner",
    "AffinerModel": "affiner",
    "add_affiner": "affiner",
    "save_affiner": "affiner",
    "load_affiner": "affiner",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
