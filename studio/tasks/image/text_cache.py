"""Caption embeddings computed once: the caption vocabulary of a dataset is finite, so training
looks its MiniLM token states up by index instead of running the text encoder every step.

Index 0 is always the empty caption — the unconditional input of classifier-free guidance
(caption dropout during training, the negative branch when sampling without a negative prompt).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch


@dataclass
class CaptionBank:
    captions: list[str]  # captions[0] == ""
    tokens: torch.Tensor  # (U, T, 384)
    mask: torch.Tensor  # (U, T) bool
    pooled: torch.Tensor  # (U, 384)

    def __post_init__(self) -> None:
        self.index = {c: i for i, c in enumerate(self.captions)}

    def ids(self, captions: list[str]) -> torch.Tensor:
        return torch.tensor([self.index[c] for c in captions], dtype=torch.long)

    def lookup(self, ids: torch.Tensor, device="cpu", dtype=torch.float32) -> dict[str, torch.Tensor]:
        """Conditioning dict for the DiT: context (B, T, 384), context_mask (B, T), pooled (B, 384)."""
        ids = ids.cpu()
        return {"context": self.tokens[ids].to(device, dtype), "context_mask": self.mask[ids].to(device),
                "pooled": self.pooled[ids].to(device, dtype)}


def _digest(captions: list[str]) -> str:
    return hashlib.sha256("\n".join(captions).encode()).hexdigest()[:16]


def build_bank(captions: list[str], cache_dir: str | Path | None = None, batch_size: int = 256) -> CaptionBank:
    """Encode the unique captions (plus "") with the core TextEncoder; cached on disk by content."""
    from safetensors.torch import load_file, save_file

    from studio.core.text import TextEncoder

    unique = [""] + sorted(set(captions) - {""})
    path = Path(cache_dir) / f"captions-{_digest(unique)}.safetensors" if cache_dir else None
    if path is not None and path.exists():
        t = load_file(str(path))
        return CaptionBank(unique, t["tokens"].float(), t["mask"].bool(), t["pooled"].float())
    enc = TextEncoder.get()
    parts = [enc.encode(unique[i:i + batch_size]) for i in range(0, len(unique), batch_size)]
    width = max(p.tokens.shape[1] for p in parts)
    tokens = torch.cat([torch.nn.functional.pad(p.tokens, (0, 0, 0, width - p.tokens.shape[1])) for p in parts])
    mask = torch.cat([torch.nn.functional.pad(p.mask, (0, width - p.mask.shape[1])) for p in parts])
    pooled = torch.cat([p.pooled for p in parts])
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        save_file({"tokens": tokens.contiguous(), "mask": mask.to(torch.uint8).contiguous(), "pooled": pooled.contiguous()}, str(tmp))
        tmp.replace(path)
    return CaptionBank(unique, tokens, mask, pooled)
