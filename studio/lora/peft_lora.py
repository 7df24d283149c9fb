"""LoRA lifecycle on any ``nn.Module`` through peft: add, save, load, stack with weights, merge, unload.

peft's functional API (``inject_adapter_in_model``, ``set_peft_model_state_dict``…) injects LoRA
layers in place, so the caller keeps its own model object (no ``PeftModel`` wrapper renaming every
key). Several adapters live side by side in the same layers; each one's weight is peft's
``LoraLayer.set_scale`` (scaling = weight · alpha / rank), and all of them are active together —
which is exactly "stacking with weights". Targets are module names; Studio's core names its
attention projections ``to_q``, ``to_k``, ``to_v``, ``to_out`` (the default targets).

Files are peft's layout (see ``studio.lora.files``): keys are saved with peft's
``base_model.model.`` prefix so ``peft.PeftModel.from_pretrained(base, folder)`` reads them too.
"""

from __future__ import annotations

import os
import warnings
from enum import Enum
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import torch
from torch import nn

from studio.lora import files
from studio.lora.identity import AdapterBaseMismatch, model_id, weights_hash

DEFAULT_TARGETS: tuple[str, ...] = ("to_q", "to_k", "to_v", "to_out")
PEFT_PREFIX = "base_model.model."
_BASE_GRAD_ATTR = "_studio_base_requires_grad"


class BaseCheck(str, Enum):
    """How strictly ``load_adapter`` checks that the adapter was trained on this base."""

    HASH = "hash"  # base weights must hash the same (the default: catches retrained bases too)
    ID = "id"  # only the recorded model ids must match
    NONE = "none"  # trust the caller (e.g. a deliberately fine-tuned base)


def _peft():
    try:
        import peft  # noqa: F401
        from peft import functional
    except ImportError as e:  # pragma: no cover - peft is a hard dependency, but say how to fix it
        raise ImportError("studio.lora needs peft: pip install 'peft>=0.13'") from e
    return functional


def _lora_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    from peft.tuners.lora import LoraLayer

    return [(n, m) for n, m in model.named_modules() if isinstance(m, LoraLayer)]


def adapter_names(model: nn.Module) -> list[str]:
    """Adapters injected into ``model``, in the order they were added."""
    return list(getattr(model, "peft_config", {}) or {})


def _check_known(model: nn.Module, names: Iterable[str]) -> None:
    known = adapter_names(model)
    for n in names:
        if n not in known:
            raise KeyError(f"unknown adapter {n!r}; loaded: {', '.join(known) or 'none'}")


def active_adapters(model: nn.Module) -> dict[str, float]:
    """Active adapters and their weights (read back from peft's per-layer scaling)."""
    out: dict[str, float] = {}
    for _, layer in _lora_layers(model):
        for name in layer.active_adapters:
            if name in layer.scaling and name not in out:
                base = layer.lora_alpha[name] / (layer.r[name] ** 0.5 if layer.use_rslora.get(name) else layer.r[name])
                out[name] = float(layer.scaling[name] / base)
    return {n: out[n] for n in adapter_names(model) if n in out}


def _trainable_adapters(model: nn.Module) -> list[str]:
    names = set()
    for _, layer in _lora_layers(model):
        for name, mod in layer.lora_A.items():
            if any(p.requires_grad for p in mod.parameters()):
                names.add(name)
    return [n for n in adapter_names(model) if n in names]


def set_adapters(model: nn.Module, names: Sequence[str], weights: Sequence[float] | float | None = None) -> None:
    """Make exactly ``names`` active, each scaled by its weight (default 1.0); others are switched off.

    Which adapters are trainable is left as it was (peft's ``set_adapter`` would otherwise unfreeze them).
    """
    names = list(names)
    _check_known(model, names)
    if weights is None:
        weights = [1.0] * len(names)
    elif isinstance(weights, (int, float)):
        weights = [float(weights)] * len(names)
    if len(weights) != len(names):
        raise ValueError(f"weights: got {len(weights)} weights for {len(names)} adapters")
    trainable = _trainable_adapters(model)
    for _, layer in _lora_layers(model):
        # a layer only activates the adapters it holds (an adapter may target fewer modules)
        layer.set_adapter([n for n in names if n in layer.lora_A] or names[:0], inference_mode=True)
        for n, w in zip(names, weights):
            layer.set_scale(n, float(w))
    if trainable:
        _peft().set_requires_grad(model, trainable, requires_grad=True)


def _remember_base_grad(model: nn.Module) -> None:
    if not hasattr(model, _BASE_GRAD_ATTR):
        setattr(model, _BASE_GRAD_ATTR, {n: p.requires_grad for n, p in model.named_parameters()})


def _inject(model: nn.Module, config: Any, name: str) -> None:
    if name in adapter_names(model):
        raise ValueError(f"adapter_name: {name!r} is already loaded; pick another name or delete it first")
    _remember_base_grad(model)
    with warnings.catch_warnings():
        # several adapters on one model is the point here, not an accident
        warnings.filterwarnings("ignore", message=".*multiple adapters.*")
        warnings.filterwarnings("ignore", message=".*Already found a `peft_config`.*")
        try:
            _peft().inject_adapter_in_model(config, model, adapter_name=name)
        except ValueError as e:
            if "not found" in str(e).lower():
                raise ValueError(f"targets: none of {sorted(config.target_modules)} is a module of "
                                 f"{type(model).__name__}") from e
            raise


def add_lora(
    model: nn.Module,
    name: str,
    rank: int = 8,
    alpha: float | None = None,
    targets: Sequence[str] = DEFAULT_TARGETS,
    dropout: float = 0.0,
    init: str | bool = True,
) -> nn.Module:
    """Inject a new trainable LoRA ``name`` (B = 0, so the output is unchanged until it trains).

    Everything but the new adapter is frozen (peft's rule); unfreeze other new branches after this.
    All adapters stay active; the new one has weight 1.0.
    """
    from peft import LoraConfig

    if not name or "." in name:
        raise ValueError(f"name: adapter name must be non-empty without dots, got {name!r}")
    if rank < 1:
        raise ValueError(f"rank: must be >= 1, got {rank}")
    targets = list(targets)
    if not targets:
        raise ValueError("targets: at least one module name is needed")
    before = active_adapters(model)
    config = LoraConfig(r=rank, lora_alpha=alpha if alpha is not None else rank, target_modules=targets,
                        lora_dropout=dropout, init_lora_weights=init)
    _inject(model, config, name)
    _peft().set_requires_grad(model, [n for n in adapter_names(model) if n != name], requires_grad=False)
    set_adapters(model, [*before, name], [*before.values(), 1.0])
    return model


def delete_adapter(model: nn.Module, name: str) -> None:
    """Remove one adapter's weights and config; the others stay as they were."""
    _check_known(model, [name])
    weights = {n: w for n, w in active_adapters(model).items() if n != name}
    _peft().delete_adapter(model, name, prefix="lora_")
    del model.peft_config[name]
    if not model.peft_config:
        unload_adapters(model)
        return
    set_adapters(model, list(weights), list(weights.values()))


def _strip_peft_layers(model: nn.Module, merge: bool) -> nn.Module:
    from peft.utils import _get_submodules

    for key, layer in _lora_layers(model):
        parent, _, child = _get_submodules(model, key)
        if merge:
            active = [n for n in layer.active_adapters if n in layer.lora_A]
            if active:
                layer.merge(adapter_names=active)
        elif layer.merged:
            layer.unmerge()  # restores the exact base weight
        setattr(parent, child, layer.get_base_layer())
    if hasattr(model, "peft_config"):
        del model.peft_config
    for n, p in model.named_parameters():
        p.requires_grad_(getattr(model, _BASE_GRAD_ATTR, {}).get(n, p.requires_grad))
    if hasattr(model, _BASE_GRAD_ATTR):
        delattr(model, _BASE_GRAD_ATTR)
    return model


def merge_adapters(model: nn.Module) -> nn.Module:
    """Fuse the active adapters, at their weights, into the base weights and remove every LoRA layer.

    The result is a plain model (new base hash); inactive adapters are dropped.
    """
    return _strip_peft_layers(model, merge=True)


def unload_adapters(model: nn.Module) -> nn.Module:
    """Remove every LoRA layer; the base modules (weights and trainability) come back exactly."""
    return _strip_peft_layers(model, merge=False)


def _card(name: str, record: Mapping[str, Any], n_params: int) -> str:
    lines = [
        f"# Adapter `{name}`",
        "",
        f"- type: {record['adapter_type']}",
        f"- base model: `{record['base_model_id']}` (weights sha256 `{record['base_model_hash'][:16]}…`)",
        f"- rank / alpha: {record['rank']} / {record['alpha']}",
        f"- targets: {', '.join(record['targets'])}",
        f"- parameters: {n_params:,}",
        f"- dataset: {record.get('dataset') or 'unspecified'}",
        f"- training steps: {record.get('steps') if record.get('steps') is not None else 'unspecified'}",
        f"- studio version: {record['studio_version']}",
    ]
    for key in sorted(set(record) - set(files.METADATA_KEYS) - {"training_config"}):
        lines.append(f"- {key}: {record[key]}")
    lines += ["", "Load it with `studio.lora.load_adapter(model, \"%s\")` (by name from `adapters/`) "
              "or by path; `peft.PeftModel.from_pretrained(base, folder)` reads it too." % name, ""]
    return "\n".join(lines)


def save_adapter(
    model: nn.Module,
    name: str,
    directory: str | os.PathLike,
    metadata: Mapping[str, Any] | None = None,
    dtype: torch.dtype | None = None,
) -> Path:
    """Write adapter ``name`` to ``directory`` (peft layout + training record + card), atomically.

    ``metadata`` adds to the record: ``dataset``, ``steps``, ``training_config``, metrics…
    ``dtype`` (e.g. ``torch.bfloat16``) casts the saved tensors to keep files small.
    """
    from studio import __version__

    _check_known(model, [name])
    config = model.peft_config[name]
    state = _peft().get_peft_model_state_dict(model, adapter_name=name)
    tensors = {PEFT_PREFIX + k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v)
               for k, v in state.items()}
    base_id = model_id(model)
    record: dict[str, Any] = {
        "base_model_id": base_id,
        "base_model_hash": weights_hash(model),
        "adapter_type": "lora",
        "rank": config.r,
        "alpha": config.lora_alpha,
        "targets": sorted(config.target_modules),
        "dataset": None,
        "steps": None,
        "studio_version": __version__,
    }
    record.update(metadata or {})
    config_dict = config.to_dict()
    config_dict["base_model_name_or_path"] = base_id
    n_params = sum(v.numel() for v in state.values())
    return files.write_adapter_dir(directory, tensors, config_dict, record, _card(name, record, n_params))


def _check_base(model: nn.Module, name: str, meta: Mapping[str, str], check: BaseCheck) -> None:
    if check is BaseCheck.NONE:
        return
    rec_id, rec_hash = meta.get("base_model_id", ""), meta.get("base_model_hash", "")
    cur_id = model_id(model)
    if check is BaseCheck.ID and rec_id and rec_id != cur_id:
        raise AdapterBaseMismatch(name, rec_id, rec_hash, cur_id, weights_hash(model))
    if check is BaseCheck.HASH and rec_hash:
        cur_hash = weights_hash(model)
        if cur_hash != rec_hash:
            raise AdapterBaseMismatch(name, rec_id, rec_hash, cur_id, cur_hash)


def load_adapter(
    model: nn.Module,
    dir_or_name: str | os.PathLike,
    adapter_name: str | None = None,
    weight: float = 1.0,
    check_base: BaseCheck | str = BaseCheck.HASH,
    trainable: bool = False,
    root: str | os.PathLike | None = None,
) -> str:
    """Load an adapter folder (by path, or by name from ``adapters/``) and activate it at ``weight``.

    Adapters already active stay active (stacking). Raises ``AdapterBaseMismatch`` when the adapter
    was trained on another base (see ``BaseCheck``). Returns the adapter's name in the model.
    """
    from peft import LoraConfig

    directory = files.resolve_adapter_dir(dir_or_name, root)
    name = adapter_name or directory.name
    meta = files.read_metadata(directory)
    kind = meta.get("adapter_type", "lora")
    if kind != "lora":
        raise ValueError(f"adapter {name!r} is a {kind!r} adapter, not LoRA; load it with its own loader")
    _check_base(model, name, meta, BaseCheck(check_base))
    config = LoraConfig.from_pretrained(str(directory))
    config.inference_mode = not trainable
    tensors = {k.removeprefix(PEFT_PREFIX): v for k, v in files.read_tensors(directory).items()}
    before = active_adapters(model)
    _inject(model, config, name)
    result = _peft().set_peft_model_state_dict(model, tensors, adapter_name=name)
    unexpected = list(getattr(result, "unexpected_keys", []) or [])
    missing = [k for k in getattr(result, "missing_keys", []) or [] if f".{name}." in k and "lora_" in k]
    if unexpected or missing:
        delete_adapter(model, name)
        raise ValueError(f"adapter {name!r} does not fit this model: unexpected {unexpected[:3]}, missing {missing[:3]}")
    _peft().set_requires_grad(model, [name], requires_grad=trainable)
    set_adapters(model, [*before, name], [*before.values(), float(weight)])
    return name


def lora_parameters(model: nn.Module, name: str) -> list[nn.Parameter]:
    """The trainable tensors of one adapter (for an optimizer)."""
    _check_known(model, [name])
    return [p for n, p in model.named_parameters() if "lora_" in n and f".{name}." in f"{n}."]
