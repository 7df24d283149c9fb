"""Diffscaler affiners: tiny per-dataset adapters on a frozen DiT, routed per sample.

On each adapted linear layer (frozen weight ``W``, frozen bias ``b̂``) an affiner ``k`` computes

    y = (1 + a_k) ⊙ (W x) + b̂ + b_k + s_k · W_up,k · ReLU(W_down,k · x)

— a per-output-channel rescale of the frozen weight's output (reuse of the subspaces the base
learned), a shift, and a low-rank new subspace. ``a``, ``b`` and ``W_up`` start at zero, so a new
affiner is an exact identity. A new dataset's class embeddings are a small table of their own,
every row initialised from the base's null-class embedding (Diffscaler, arXiv 2404.09976 §3).

Per-sample routing: inside ``route(model, names)`` each sample of a batch uses the affiners of
its own dataset. Parameters of the datasets in the batch are stacked and gathered per sample, so a
mixed batch is one pass of batched matmuls, not a loop over sub-batches.

Why peft, and which part of it: the affiner is a peft custom tuner — ``AffinerConfig`` is a
``PeftConfig``, ``AffinerModel`` a ``BaseTuner`` (target matching, module replacement, freezing the
base, unload) and the layers are ``BaseTunerLayer``s (adapters keyed by name, set/delete adapter,
enable/disable). ``peft.register_peft_method`` is *not* used: it only accepts names already in
peft's closed ``PeftType`` enum, so a third-party method cannot register without patching peft.
peft's own per-sample mechanism (LoRA's ``adapter_names=[...]`` forward kwarg) splits the batch
into one sub-batch per adapter and loops; an affiner's parameters are small enough to gather per
sample instead, which keeps a mixed batch as fast as a single-dataset one. Hence the explicit
``route`` context rather than ``adapter_names``.

Files follow the adapter layout of ``studio.lora``: ``adapter_config.json`` +
``adapter_model.safetensors`` (metadata in the header; ``adapter_type = "affiner"``) +
``ADAPTER_CARD.md``.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
import torch.nn.functional as F
from peft.config import PeftConfig
from peft.tuners.tuners_utils import BaseTuner, BaseTunerLayer
from torch import nn

ADAPTER_TYPE = "affiner"

# Target groups in the user's vocabulary → the core's stable layer names (docs/CONTRACTS.md).
# A name may be the Linear itself or a container whose numbered child is the Linear
# (``adaLN_modulation.1`` in DiT-style blocks).
TARGET_GROUPS: dict[str, tuple[str, ...]] = {
    "attention": ("to_q", "to_k", "to_v", "to_out"),
    "mlp": ("fc1", "fc2"),
    "adaln": ("adaLN_modulation",),
    "final": ("linear",),
    "label": ("embedding_table",),
}
DEFAULT_TARGETS = ("attention", "mlp", "adaln", "label")


def _target_regex(groups: Sequence[str]) -> str:
    unknown = [g for g in groups if g not in TARGET_GROUPS]
    if unknown:
        raise ValueError(f"targets: unknown group(s) {unknown}; choose from {sorted(TARGET_GROUPS)}")
    names = sorted({n for g in groups for n in TARGET_GROUPS[g]})
    return r"(.*\.)?(" + "|".join(map(re.escape, names)) + r")(\.\d+)?"


@dataclass
class AffinerConfig(PeftConfig):
    """One dataset's affiner: which layers, bottleneck rank, and its number of classes."""

    rank: int = field(default=4, metadata={"help": "width of the ReLU bottleneck (W_down: r×in)"})
    targets: list[str] = field(default_factory=lambda: list(DEFAULT_TARGETS))
    num_labels: int = field(default=0, metadata={"help": "classes of the new dataset (0: unconditional)"})
    null_label: int | None = field(default=None, metadata={"help": "the base's null-class index (set on inject)"})
    target_modules: str | list[str] | None = None
    exclude_modules: str | list[str] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        self.peft_type = ADAPTER_TYPE.upper()
        if self.rank < 0:
            raise ValueError(f"rank: must be ≥ 0, got {self.rank}")
        if self.num_labels < 0:
            raise ValueError(f"num_labels: must be ≥ 0, got {self.num_labels}")
        self.targets = list(self.targets)
        self.target_modules = _target_regex(self.targets)

    def to_json(self) -> dict[str, Any]:
        return {"adapter_type": ADAPTER_TYPE, "rank": self.rank, "targets": self.targets,
                "num_labels": self.num_labels, "null_label": self.null_label}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "AffinerConfig":
        return cls(rank=int(d["rank"]), targets=list(d["targets"]), num_labels=int(d["num_labels"]),
                   null_label=d.get("null_label"))


@dataclass(frozen=True)
class _Route:
    names: tuple[str, ...]  # adapters in the batch, in stacking order
    index: torch.Tensor  # (B,) long: which of ``names`` each sample uses


class AffinerLayer(BaseTunerLayer):
    """Shared bookkeeping of the affiner layers (adapters keyed by name, routing state)."""

    _route: _Route | None = None

    def _adapters_for_call(self, batch: int) -> _Route | None:
        """The route for this call: explicit per-sample routing, else the single active adapter."""
        if self.disable_adapters:
            return None
        if self._route is not None:
            if self._route.index.shape[0] != batch:
                raise ValueError(f"routing has {self._route.index.shape[0]} entries for a batch of {batch}")
            # a dataset whose affiner skips this layer leaves it as the base layer for its samples
            return self._route if set(self._route.names) & self._available() else None
        active = [n for n in self.active_adapters if n in self._available()]
        if not active:
            return None
        if len(active) > 1:
            raise ValueError(f"affiners {active} are active together; route samples with route() instead")
        return _Route((active[0],), torch.zeros(batch, dtype=torch.long))

    def _available(self) -> set[str]:
        return set(getattr(self, self.adapter_layer_names[0]).keys())


class AffinerLinear(nn.Module, AffinerLayer):
    """``nn.Linear`` with one affiner per dataset."""

    adapter_layer_names = ("affiner_a", "affiner_b", "affiner_s", "affiner_down", "affiner_up")

    def __init__(self, base_layer: nn.Linear, adapter_name: str, config: AffinerConfig):
        super().__init__()
        self.base_layer = base_layer
        self.affiner_a = nn.ParameterDict()
        self.affiner_b = nn.ParameterDict()
        self.affiner_s = nn.ParameterDict()
        self.affiner_down = nn.ParameterDict()
        self.affiner_up = nn.ParameterDict()
        self._active_adapter = adapter_name
        self.update_layer(adapter_name, config)

    def update_layer(self, adapter_name: str, config: AffinerConfig) -> None:
        w = self.base_layer.weight
        out_f, in_f = w.shape
        kw = {"device": w.device, "dtype": torch.float32}
        self.affiner_a[adapter_name] = nn.Parameter(torch.zeros(out_f, **kw))
        self.affiner_b[adapter_name] = nn.Parameter(torch.zeros(out_f, **kw))
        self.affiner_s[adapter_name] = nn.Parameter(torch.ones((), **kw))
        down = torch.empty(config.rank, in_f, **kw)
        nn.init.kaiming_uniform_(down, a=5**0.5)  # same as nn.Linear / peft LoRA's A
        self.affiner_down[adapter_name] = nn.Parameter(down)
        # zero W_up: the new subspace contributes nothing until trained (identity at init)
        self.affiner_up[adapter_name] = nn.Parameter(torch.zeros(out_f, config.rank, **kw))
        self.set_adapter(self.active_adapters)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        base = self.base_layer
        route = self._adapters_for_call(x.shape[0]) if x.dim() >= 2 else None
        if route is None:
            return base(x)
        wx = F.linear(x, base.weight)  # (B, ..., out): the part the affiner rescales
        if len(route.names) == 1:
            y = self._single(x, wx, route.names[0])
        else:
            y = self._mixed(x, wx, route)
        return y if base.bias is None else y + base.bias.to(y.dtype)

    def _single(self, x: torch.Tensor, wx: torch.Tensor, n: str) -> torch.Tensor:
        """Whole batch on one affiner: shared parameters, plain matmuls."""
        a, b = self.affiner_a[n].to(wx.dtype), self.affiner_b[n].to(wx.dtype)
        y = wx * (1 + a) + b
        down, up = self.affiner_down[n], self.affiner_up[n]
        if down.shape[0] == 0:
            return y
        h = F.relu(F.linear(x, down.to(x.dtype)))  # (B, ..., r)
        return y + (self.affiner_s[n] * F.linear(h, up.to(h.dtype))).to(y.dtype)

    def _mixed(self, x: torch.Tensor, wx: torch.Tensor, route: _Route) -> torch.Tensor:
        """Each sample on its own affiner.

        ``a``, ``b``, ``s`` are gathered per sample. The bottlenecks of all D datasets in the batch
        run as one GEMM of width D·r, and a block mask keeps each sample's own r units: D× the
        (tiny) low-rank FLOPs, but plain matmuls instead of per-sample weight copies and bmm.
        """
        a, b, s, down, up, block = self._stacked(route.names)  # (D, out) (D, out) (D,) (D·r, in) (out, D·r) (D, D·r)
        index = route.index.to(a.device)
        lead = (x.shape[0],) + (1,) * (x.dim() - 2)
        y = wx * (1 + a[index]).view(*lead, -1).to(wx.dtype) + b[index].view(*lead, -1).to(wx.dtype)
        if down.shape[0] == 0:
            return y
        h = F.relu(F.linear(x, down.to(x.dtype)))  # (B, ..., D·r)
        keep = (block[index] * s[index, None]).view(*lead, -1).to(h.dtype)  # (B, 1.., D·r): own block, scaled by s
        return y + F.linear(h * keep, up.to(h.dtype))  # (B, ..., out)

    def _stacked(self, names: tuple[str, ...]) -> tuple[torch.Tensor, ...]:
        """The D datasets' parameters side by side (cached while weights are unchanged and no
        gradient is needed, i.e. when serving). A dataset without an affiner here gets the identity."""
        versions = tuple((n, *(p._version for p in self._params_of(n))) for n in names)
        cache = getattr(self, "_stack_cache", None)
        if cache is not None and cache[0] == versions and not torch.is_grad_enabled():
            return cache[1]
        out_f, in_f = self.base_layer.weight.shape
        ref = next(iter(self.affiner_a.values()))
        zeros = lambda *shape: torch.zeros(shape, device=ref.device, dtype=ref.dtype)  # noqa: E731
        a, b, s, down, up, widths = [], [], [], [], [], []
        for n in names:
            if n in self.affiner_a:
                a.append(self.affiner_a[n]), b.append(self.affiner_b[n]), s.append(self.affiner_s[n])
                down.append(self.affiner_down[n]), up.append(self.affiner_up[n])
            else:
                a.append(zeros(out_f)), b.append(zeros(out_f)), s.append(zeros())
                down.append(zeros(0, in_f)), up.append(zeros(out_f, 0))
            widths.append(down[-1].shape[0])
        block = torch.zeros(len(names), sum(widths), device=ref.device, dtype=ref.dtype)  # (D, D·r)
        start = 0
        for i, w in enumerate(widths):
            block[i, start:start + w] = 1
            start += w
        stacked = (torch.stack(a), torch.stack(b), torch.stack(s), torch.cat(down), torch.cat(up, 1), block)
        if not torch.is_grad_enabled():
            self._stack_cache = (versions, tuple(t.detach() for t in stacked))
        return stacked

    def _params_of(self, n: str) -> list[torch.Tensor]:
        return [getattr(self, attr)[n] for attr in self.adapter_layer_names if n in getattr(self, attr)]


class AffinerEmbedding(nn.Module, AffinerLayer):
    """The label-embedding table: one new table per dataset, rows initialised from the null class.

    Labels ``0..num_labels-1`` are the dataset's classes; the base's null index (classifier-free
    guidance's unconditional label) maps to the dataset's own null row.
    """

    adapter_layer_names = ("affiner_table",)
    other_param_names = ("affiner_num_labels",)

    def __init__(self, base_layer: nn.Embedding, adapter_name: str, config: AffinerConfig):
        super().__init__()
        self.base_layer = base_layer
        self.affiner_table = nn.ParameterDict()
        self.affiner_num_labels: dict[str, int] = {}
        self.null_label = base_layer.num_embeddings - 1
        self._active_adapter = adapter_name
        self.update_layer(adapter_name, config)

    def update_layer(self, adapter_name: str, config: AffinerConfig) -> None:
        null_row = self.base_layer.weight[self.null_label].detach().float()  # (C,)
        if config.num_labels > self.null_label:
            raise ValueError(f"num_labels: {config.num_labels} classes do not fit a base with "
                             f"{self.null_label} (its null index would collide)")
        config.null_label = self.null_label
        table = null_row.unsqueeze(0).repeat(config.num_labels + 1, 1).clone()  # (K+1, C)
        self.affiner_table[adapter_name] = nn.Parameter(table)
        self.affiner_num_labels[adapter_name] = config.num_labels
        self.set_adapter(self.active_adapters)

    def forward(self, labels: torch.Tensor) -> torch.Tensor:
        route = self._adapters_for_call(labels.shape[0])
        if route is None:
            return self.base_layer(labels)
        # per dataset: its table, its class count k and the row of its null class; a dataset with
        # no label affiner keeps the base table (classes index it directly, null stays null)
        tables, sizes = [], []
        for n in route.names:
            if n in self.affiner_table:
                tables.append(self.affiner_table[n].to(self.base_layer.weight.dtype))
                sizes.append(self.affiner_num_labels[n])
            else:
                tables.append(self.base_layer.weight)
                sizes.append(self.null_label)
        dev = labels.device
        sizes_t = torch.tensor(sizes, device=dev)
        k = sizes_t[route.index.to(dev)]  # (B,) classes of each sample's dataset
        is_null = labels == self.null_label
        if bool(((labels >= k) & ~is_null).any()) or bool((labels < 0).any()):
            raise ValueError(f"labels {labels.tolist()} out of range for datasets with {sizes} classes")
        rows = torch.tensor([t.shape[0] for t in tables], device=dev)
        offsets = torch.cumsum(rows, 0) - rows  # (D,) first row of each dataset's table
        row = offsets[route.index.to(dev)] + torch.where(is_null, k, labels)  # (B,)
        return torch.cat(tables)[row]  # (B, C)


class AffinerModel(BaseTuner):
    """peft tuner that injects affiners; ``add()`` one per dataset, ``route()`` to mix them."""

    prefix = "affiner_"
    tuner_layer_cls = AffinerLayer
    target_module_mapping: dict[str, list[str]] = {}

    def _create_and_replace(self, config, adapter_name, target, target_name, parent, current_key=None, **kw):
        if isinstance(target, (AffinerLinear, AffinerEmbedding)):
            target.update_layer(adapter_name, config)
        elif isinstance(target, nn.Linear):
            self._replace_module(parent, target_name, AffinerLinear(target, adapter_name, config), target)
        elif isinstance(target, nn.Embedding):
            self._replace_module(parent, target_name, AffinerEmbedding(target, adapter_name, config), target)
        # anything else that matched is a container (e.g. Sequential); its Linear child matches too

    def _mark_only_adapters_as_trainable(self, model: nn.Module) -> None:
        for n, p in model.named_parameters():
            p.requires_grad = self.prefix in n

    def add(self, adapter_name: str, config: AffinerConfig) -> None:
        if adapter_name in self.peft_config:
            raise ValueError(f"adapter: an affiner named {adapter_name!r} is already loaded")
        self.peft_config[adapter_name] = config
        self.inject_adapter(self.model, adapter_name)
        self.set_adapter(adapter_name)

    def names(self) -> list[str]:
        return list(self.peft_config)

    def set_adapter(self, adapter_name: str | list[str], inference_mode: bool = False) -> None:
        for m in self.model.modules():
            if isinstance(m, AffinerLayer):
                m.set_adapter(adapter_name, inference_mode=inference_mode)
        self.active_adapter = adapter_name

    def trainable_parameters(self, adapter_name: str) -> dict[str, nn.Parameter]:
        return {k: p for k, p in self.model.named_parameters() if _adapter_of_key(k) == adapter_name}

    @contextlib.contextmanager
    def route(self, names: Sequence[str]) -> Iterator[None]:
        """Each sample ``i`` of the next forward passes uses affiner ``names[i]``."""
        order = tuple(dict.fromkeys(names))
        unknown = [n for n in order if n not in self.peft_config]
        if unknown:
            raise KeyError(f"datasets: no affiner loaded for {unknown}; loaded: {self.names()}")
        index = torch.tensor([order.index(n) for n in names], dtype=torch.long)
        layers = [m for m in self.model.modules() if isinstance(m, AffinerLayer)]
        for m in layers:
            m._route = _Route(order, index)
        try:
            yield
        finally:
            for m in layers:
                m._route = None


def _adapter_of_key(key: str) -> str | None:
    parts = key.split(".")
    for i, p in enumerate(parts[:-1]):
        if p.startswith(AffinerModel.prefix):
            return parts[i + 1]
    return None


def add_affiner(model: nn.Module, name: str, config: AffinerConfig) -> AffinerModel:
    """Inject an affiner named ``name`` (a dataset) into ``model``; freezes everything else.

    Returns the tuner; later affiners go through ``tuner.add(name, config)``.
    """
    tuner = getattr(model, "_affiner_tuner", None)
    if tuner is None:
        # BaseTuner writes its configs to ``model.peft_config``, where studio.lora keeps the LoRA
        # adapters' configs; the affiner tuner keeps its own, so LoRA and affiners can coexist. (Hidden
        # while the tuner is built: BaseTuner would otherwise find it through the model and join it.)
        previous = model.__dict__.pop("peft_config", None)
        try:
            tuner = AffinerModel(model, config, name)
        finally:
            model.__dict__.pop("peft_config", None)
            if previous is not None:
                model.peft_config = previous
        object.__setattr__(model, "_affiner_tuner", tuner)  # not a submodule: no cycle in modules()
    else:
        tuner.add(name, config)
    return tuner


def affiner_state_dict(tuner: AffinerModel, name: str) -> dict[str, torch.Tensor]:
    """Weights of one affiner, keys without the adapter name (peft convention)."""
    out = {}
    for key, p in tuner.trainable_parameters(name).items():
        out[key.replace(f".{name}", "", 1) if f".{name}" in key else key] = p.detach().cpu().contiguous()
    return out


def num_affiner_parameters(tuner: AffinerModel, name: str) -> int:
    return sum(p.numel() for p in tuner.trainable_parameters(name).values())


# ---------------------------------------------------------------------------------------------
# Files: the shared adapter folder format of ``studio.lora.files``


class AffinerFileError(ValueError):
    """An affiner folder that cannot be loaded here; ``field`` names what is wrong."""

    def __init__(self, field_name: str, message: str):
        super().__init__(f"{field_name}: {message}")
        self.field = field_name


def save_affiner(tuner: AffinerModel, name: str, out_dir: str | Path, record: dict[str, Any],
                 card: str, dtype: torch.dtype = torch.bfloat16) -> Path:
    """Write one affiner as an adapter folder (atomic; metadata in the safetensors header).

    ``record`` carries ``base_model_id`` and ``base_model_hash`` (checked on load), ``dataset``,
    ``steps`` and whatever else the training run wants remembered.
    """
    from studio.lora.files import write_adapter_dir

    for key in ("base_model_id", "base_model_hash"):
        if not record.get(key):
            raise ValueError(f"record: {key} is required so the adapter can name its base")
    cfg = tuner.peft_config[name]
    config = {"studio_type": ADAPTER_TYPE, **cfg.to_json()}
    meta = {**record, "adapter_type": ADAPTER_TYPE, "rank": cfg.rank, "targets": cfg.targets,
            "num_labels": cfg.num_labels, "studio_version": _studio_version()}
    tensors = {k: v.to(dtype) for k, v in affiner_state_dict(tuner, name).items()}
    return write_adapter_dir(out_dir, tensors, config, meta, card)


def load_affiner(model: nn.Module, name_or_path: str | Path, name: str | None = None,
                 base_hash: str | None = None) -> AffinerModel:
    """Load an affiner (folder path or name under ``adapters/``) onto ``model`` as ``name``.

    ``base_hash`` is the ``studio.lora.identity.weights_hash`` of the base, taken before any
    adapter was injected; an adapter trained on another base raises ``AdapterBaseMismatch``.
    """
    from studio.lora.files import read_config, read_metadata, read_tensors, resolve_adapter_dir
    from studio.lora.identity import AdapterBaseMismatch, model_id

    path = resolve_adapter_dir(name_or_path)
    meta = read_metadata(path)
    kind = meta.get("adapter_type") or read_config(path).get("studio_type", "lora")
    if kind != ADAPTER_TYPE:
        raise AffinerFileError("adapters", f"{path.name!r} is a {kind!r} adapter; only affiners can share "
                               "a mixed-dataset batch")
    saved = meta.get("base_model_hash", "")
    if base_hash is not None and saved != base_hash:
        raise AdapterBaseMismatch(path.name, meta.get("base_model_id", "?"), saved or "unknown",
                                  model_id(model), base_hash)
    cfg = AffinerConfig.from_json(read_config(path))
    name = name or path.name
    tuner = add_affiner(model, name, cfg)
    tensors = read_tensors(path)
    expected = {k.replace(f".{name}", "", 1): p for k, p in tuner.trainable_parameters(name).items()}
    problem = _fit_problem(expected, tensors)
    if problem:
        tuner.delete_adapter(name)
        raise AffinerFileError("adapters", f"{path.name!r} does not fit this model: {problem}")
    with torch.no_grad():
        for k, p in expected.items():
            p.copy_(tensors[k].to(p.dtype))
    return tuner


def _fit_problem(expected: dict[str, torch.Tensor], tensors: dict[str, torch.Tensor]) -> str:
    missing, extra = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
    if missing or extra:
        return f"missing {missing[:3]}, unexpected {extra[:3]}"
    for k, p in expected.items():
        if p.shape != tensors[k].shape:
            return f"{k} has shape {tuple(tensors[k].shape)}, the model expects {tuple(p.shape)}"
    return ""


def _studio_version() -> str:
    try:
        from importlib.metadata import version

        return version("studio")
    except Exception:
        return "0"
