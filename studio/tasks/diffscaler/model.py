"""The Diffscaler network: one frozen DiT + per-dataset affiners, samples routed per dataset.

``DiffscalerNet`` owns the frozen base and the affiner tuner. Its ``eps(x, t, cond)`` is the
``model_fn`` of ``studio.diffusion.sample``: ``cond = {"labels": (B,), "route": (B,)}`` where
``route`` indexes ``datasets`` — so guidance's cond/uncond batching duplicates the routing too.

Where a dataset's class enters the base:
- a class-conditional base (``num_classes > 0``): its label table ``y_embedder.embedding_table``
  is the affiner's ``label`` target; the new classes start from its null row;
- a text-conditioned base: a frozen null table in the base's pooled-text space (every row the
  null caption's pooled vector) fed as ``pooled``, with the null caption's tokens as context; its
  ``embedding_table`` is the ``label`` target, so new classes again start from the null condition.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from studio.lora.affiner import AffinerConfig, AffinerModel, add_affiner, load_affiner

MAX_TEXT_CLASSES = 64  # classes a dataset may have on a text-conditioned base (null table rows)


@dataclass(frozen=True)
class BaseInfo:
    """Which base the affiners belong to (written into and checked against adapter headers)."""

    model_id: str
    weights_hash: str


class NullCondition(nn.Module):
    """A text-conditioned base's null condition as a label table (rows = null pooled vector)."""

    def __init__(self, pooled: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor):
        super().__init__()
        self.embedding_table = nn.Embedding(MAX_TEXT_CLASSES + 1, pooled.shape[-1])
        with torch.no_grad():
            self.embedding_table.weight.copy_(pooled.reshape(1, -1).expand(MAX_TEXT_CLASSES + 1, -1))
        self.embedding_table.weight.requires_grad_(False)
        self.register_buffer("tokens", tokens.reshape(1, *tokens.shape[-2:]), persistent=False)  # (1, T, C)
        self.register_buffer("mask", mask.reshape(1, -1).bool(), persistent=False)  # (1, T)

    @property
    def tuner(self) -> AffinerModel | None:
        # kept off the module tree: the tuner holds this net, a submodule would make a cycle
        return getattr(self, "_affiner_tuner", None)

    @property
    def null_label(self) -> int:
        return MAX_TEXT_CLASSES


class DiffscalerNet(nn.Module):
    """Frozen base DiT + affiners (one per dataset); ``forward(x, t, labels, datasets)``."""

    def __init__(self, base: nn.Module, info: BaseInfo, null_text: NullCondition | None = None):
        super().__init__()
        cfg = base.config
        if cfg.num_classes == 0 and null_text is None:
            raise ValueError("model: a base without classes needs its null text condition (null_text)")
        self.base = base.requires_grad_(False)
        self.info = info
        self.null_text = null_text
        self.datasets: list[str] = []

    # ------------------------------------------------------------------ adapters

    @property
    def tuner(self) -> AffinerModel | None:
        # kept off the module tree: the tuner holds this net, a submodule would make a cycle
        return getattr(self, "_affiner_tuner", None)

    @property
    def null_label(self) -> int:
        return self.base.config.num_classes if self.null_text is None else self.null_text.null_label

    @property
    def in_channels(self) -> int:
        return self.base.config.in_channels

    @property
    def sample_size(self) -> int:
        return self.base.config.sample_size

    def add(self, name: str, config: AffinerConfig) -> AffinerModel:
        tuner = add_affiner(self, name, config)
        self.datasets.append(name)
        return tuner

    def load(self, name_or_path: str | Path, name: str) -> AffinerModel:
        tuner = load_affiner(self, name_or_path, name=name, base_hash=self.info.weights_hash)
        self.datasets.append(name)
        return tuner

    def num_labels(self, name: str) -> int:
        return self.tuner.peft_config[name].num_labels

    # ------------------------------------------------------------------ forward

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor,
                datasets: list[str] | None = None) -> torch.Tensor:
        """ε (and learned σ) for (B, C, H, W) ``x``; ``datasets[i]`` routes sample i (None: the
        active affiner for the whole batch)."""
        if datasets is None or self.tuner is None:
            return self._base_forward(x, t, labels)
        with self.tuner.route(datasets):
            return self._base_forward(x, t, labels)

    def _base_forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.null_text is None:
            return self.base(x, t, y=labels)
        B = x.shape[0]
        pooled = self.null_text.embedding_table(labels)  # (B, P): routed per dataset
        ctx = self.null_text.tokens.expand(B, -1, -1).to(x.dtype)  # (B, T, C)
        mask = self.null_text.mask.expand(B, -1)
        return self.base(x, t, context=ctx, context_mask=mask, pooled=pooled)

    def eps(self, x: torch.Tensor, t: torch.Tensor, cond: dict[str, torch.Tensor]) -> torch.Tensor:
        """``model_fn`` for ``studio.diffusion.sample``: learned σ split off."""
        names = [self.datasets[i] for i in cond["route"].tolist()]
        out = self(x, t, cond["labels"], names)
        return out[:, : self.in_channels]


# ---------------------------------------------------------------------------------------------
# Loading the base


def base_info(model: nn.Module, model_id: str) -> BaseInfo:
    """Identity of a freshly loaded base (hash taken before any adapter is injected)."""
    from studio.lora.identity import set_model_id, weights_hash

    set_model_id(model, model_id)
    return BaseInfo(model_id, weights_hash(model))


def load_base(name_or_path: str = "image-dit", device: str = "cpu") -> DiffscalerNet:
    """The frozen base DiT from ``models/`` (or a path) wrapped for affiners."""
    from studio.core.dit import DiT
    from studio.paths import model_path

    path = model_path(name_or_path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"model: no base model {name_or_path!r} (looked for {path / 'config.json'})")
    try:
        from studio.core.checkpoint import load_model

        base = load_model(DiT, path, device=device, dtype=torch.float32)
    except ImportError:
        base = DiT.from_pretrained(str(path))  # moved with the wrapper below
    base.eval()
    info = base_info(base, Path(name_or_path).name)
    null_text = None if base.config.num_classes > 0 else null_text_condition(base, path)
    return DiffscalerNet(base, info, null_text).to(device)


def null_text_condition(base: nn.Module, path: Path) -> NullCondition:
    """The null caption a text-conditioned base was trained with for classifier-free guidance."""
    from studio.core.text import TextEncoder

    emb = TextEncoder.get().encode([""])
    return NullCondition(emb.pooled[0], emb.tokens[0], emb.mask[0])


def describe(net: DiffscalerNet) -> dict[str, Any]:
    base_params = sum(p.numel() for p in net.base.parameters())
    return {"base_model_id": net.info.model_id, "base_model_hash": net.info.weights_hash,
            "base_parameters": base_params}
