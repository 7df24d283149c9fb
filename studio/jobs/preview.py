"""Small PNG previews for progress events: ``data:image/png;base64,...``, at most 128 px."""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np

MAX_SIDE = 128


def to_uint8_hwc(preview: Any) -> np.ndarray | None:
    """A PIL image, uint8 HWC array, float array in [0, 1] or CHW/HWC torch tensor → uint8 HWC."""
    if preview is None:
        return None
    if hasattr(preview, "convert") and hasattr(preview, "size"):  # PIL image
        return np.asarray(preview.convert("RGB"))
    if hasattr(preview, "detach"):  # torch tensor
        preview = preview.detach().float().cpu().numpy()
    arr = np.asarray(preview)
    if arr.ndim == 4:  # a batch: preview the first
        arr = arr[0]
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[-1] not in (1, 3, 4):
        arr = arr.transpose(1, 2, 0)  # (C, H, W) -> (H, W, C)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3):
        return None
    if arr.dtype != np.uint8:
        arr = (np.clip(np.nan_to_num(arr.astype(np.float32)), 0.0, 1.0) * 255).round().astype(np.uint8)
    return arr


def encode_preview(preview: Any) -> str | None:
    from PIL import Image

    arr = to_uint8_hwc(preview)
    if arr is None:
        return None
    image = Image.fromarray(arr)
    image.thumbnail((MAX_SIDE, MAX_SIDE))
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
