"""Per-worker model cache: loaded pipelines kept by (task, ModelKey, device, dtype), LRU under a budget.

The second job on a model reuses the loaded pipeline instead of reloading it. A pipeline's size is
what it reports through ``nbytes()`` / ``memory_bytes`` when it has either, else the bytes of the
torch parameters and buffers reachable from it (an ``nn.Module`` or its attributes).
"""

from __future__ import annotations

import sys
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Hashable

CacheKey = tuple[str, Hashable, str, str]  # (task, ModelKey, device, dtype)


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    evictions: int = 0
    bytes: int = 0
    entries: int = 0


class ModelCache:
    def __init__(self, budget_bytes: int = 4 << 30):
        if budget_bytes <= 0:
            raise ValueError(f"budget_bytes must be positive, got {budget_bytes}")
        self.budget_bytes = int(budget_bytes)
        self._entries: OrderedDict[CacheKey, tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()
        self.stats = CacheStats()

    def get_or_load(self, key: CacheKey, load: Callable[[], Any]) -> tuple[Any, bool]:
        """The cached pipeline for ``key`` (hit=True) or a freshly loaded one (hit=False)."""
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                self.stats.hits += 1
                return self._entries[key][0], True
        pipeline = load()
        size = pipeline_nbytes(pipeline)
        with self._lock:
            self.stats.misses += 1
            self._entries[key] = (pipeline, size)
            self._entries.move_to_end(key)
            self._evict(keep=key)
            self._update_stats()
        return pipeline, False

    def _evict(self, keep: CacheKey) -> None:
        # the entry just loaded always stays, even alone over budget: the job needs it now
        while self._total() > self.budget_bytes and len(self._entries) > 1:
            oldest = next(iter(self._entries))
            if oldest == keep:
                break
            self._entries.pop(oldest)
            self.stats.evictions += 1

    def _total(self) -> int:
        return sum(size for _, size in self._entries.values())

    def _update_stats(self) -> None:
        self.stats.bytes = self._total()
        self.stats.entries = len(self._entries)

    def keys(self) -> list[CacheKey]:
        with self._lock:
            return list(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._update_stats()

    def __contains__(self, key: CacheKey) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)


def pipeline_nbytes(pipeline: Any) -> int:
    for attr in ("nbytes", "memory_bytes"):
        value = getattr(pipeline, attr, None)
        if callable(value):
            value = value()
        if isinstance(value, int):
            return value
    return _torch_nbytes(pipeline)


def _torch_nbytes(pipeline: Any) -> int:
    torch = sys.modules.get("torch")
    if torch is None:  # a pipeline holding tensors has imported torch already; never import it here
        return 0
    modules = [pipeline] if isinstance(pipeline, torch.nn.Module) else [
        v for v in vars(pipeline).values() if isinstance(v, torch.nn.Module)
    ] if hasattr(pipeline, "__dict__") else []
    seen: set[int] = set()
    total = 0
    for module in modules:
        for t in [*module.parameters(), *module.buffers()]:
            if id(t) not in seen:
                seen.add(id(t))
                total += t.numel() * t.element_size()
    return total
