"""Text → image with a DiT/LiT: encode prompts, run the shared denoising loop, return uint8 images.

1. encode prompt and negative prompt (MiniLM tokens + pooled vector; "" = unconditional);
2. start from seeded Gaussian noise;
3. denoise with the chosen diffusers sampler and classifier-free guidance, reporting each step;
4. map [-1, 1] → uint8 HWC.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from studio.diffusion import make_scheduler, sample, split_learned_sigma


@dataclass
class ImagePipeline:
    """A loaded model ready to generate; ``name`` and ``hash`` go into every output's recipe."""

    model: torch.nn.Module
    name: str
    content_hash: str = ""
    device: str = "cpu"
    dtype: torch.dtype = torch.float32
    adapters: tuple[tuple[str, float], ...] = ()

    @property
    def patch_size(self) -> int:
        return int(self.model.config.patch_size)

    @property
    def sample_size(self) -> int:
        return int(self.model.config.sample_size)


def encode_prompts(prompts: list[str], bank=None, device="cpu", dtype=torch.float32) -> dict[str, torch.Tensor]:
    """DiT conditioning for ``prompts``: from a precomputed CaptionBank when it has them all, else
    from the MiniLM encoder."""
    if bank is not None and all(p in bank.index for p in prompts):
        return bank.lookup(bank.ids(prompts), device, dtype)
    from studio.core.text import TextEncoder

    emb = TextEncoder.get().encode(prompts)
    return {"context": emb.tokens.to(device, dtype), "context_mask": emb.mask.to(device), "pooled": emb.pooled.to(device, dtype)}


def model_fn_of(model: torch.nn.Module, autocast: bool = False) -> Callable:
    """Adapter from the DiT's (ε, σ) output to the sampler's ε-only callable."""
    channels = int(model.config.in_channels)

    def fn(x, t, cond):
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=autocast):
            out = model(x, t, **cond)
        return split_learned_sigma(out.float(), channels)[0]

    return fn


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) in [-1, 1] → (B, H, W, 3) uint8."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


@torch.no_grad()
def generate_arrays(model: torch.nn.Module, bank, prompts: list[str], size: int = 32, steps: int = 20,
                    guidance: float = 3.0, seed: int = 0, sampler: str = "dpm++", negative_prompt: str = "",
                    callback: Callable | None = None, device: str = "cpu", autocast: bool = False) -> np.ndarray:
    """Generate one image per prompt → uint8 (B, size, size, 3). Same seed, same images."""
    model.eval()
    B = len(prompts)
    cond = encode_prompts(prompts, bank, device)
    uncond = encode_prompts([negative_prompt] * B, bank, device) if guidance != 1.0 else None
    if uncond is not None and uncond["context"].shape[1] != cond["context"].shape[1]:
        cond, uncond = _pad_same(cond, uncond)
    g = torch.Generator("cpu").manual_seed(seed)
    x_T = torch.randn((B, int(model.config.in_channels), size, size), generator=g)
    # pixel-space model: data live in [-1, 1], so each step's x0 estimate is clipped there
    x0 = sample(model_fn_of(model, autocast), tuple(x_T.shape), make_scheduler(sampler, clip_x0=1.0), steps, generator=g,
                guidance=guidance, cond=cond, uncond=uncond, callback=callback, device=device, x_T=x_T)
    return to_uint8(x0)


def _pad_same(a: dict, b: dict) -> tuple[dict, dict]:
    """Pad token tensors of two conditionings to one length (masked padding) so they batch."""
    T = max(a["context"].shape[1], b["context"].shape[1])

    def pad(c):
        n = T - c["context"].shape[1]
        return {"context": torch.nn.functional.pad(c["context"], (0, 0, 0, n)),
                "context_mask": torch.nn.functional.pad(c["context_mask"], (0, n)), "pooled": c["pooled"]}

    return pad(a), pad(b)


def grid(images: np.ndarray, cols: int | None = None) -> np.ndarray:
    """(N, H, W, 3) → one (rows·H, cols·W, 3) image."""
    n, h, w, _ = images.shape
    cols = cols or n
    rows = -(-n // cols)
    out = np.zeros((rows * h, cols * w, 3), np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        out[r * h:(r + 1) * h, c * w:(c + 1) * w] = img
    return out


def save_grid(images: np.ndarray, path: str | Path, cols: int | None = None, scale: int = 2) -> Path:
    import cv2

    g = grid(images, cols)
    g = cv2.resize(g, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(g, cv2.COLOR_RGB2BGR))
    return path
