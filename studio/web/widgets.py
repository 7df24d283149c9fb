"""Schema field → gradio widget, and widget value ↔ the JSON a job spec holds.

Media fields get upload widgets (image, mask painter, video, audio with microphone, MIDI file,
3D viewer); bounded numbers get sliders; enums get dropdowns. Uploaded media is copied through
the API's ``UploadStore`` (same size/type checks as ``POST /api/uploads``) so the job spec holds a
server path that outlives gradio's temp cache.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

from studio.api.uploads import UploadStore
from studio.api.fields import FieldSpec

SLIDER_MAX_SPAN = 100_000  # wider ranges (seeds, sample counts) are easier typed than dragged


def make_widget(spec: FieldSpec, elem_id: str, adapters: Callable[[], list[str]] = list):
    """The gradio component for one field (must be called inside a ``gr.Blocks`` context)."""
    import gradio as gr

    label = spec.title + ("" if spec.required else " (optional)" if spec.nullable else "")
    common = dict(label=label, info=spec.description or None, elem_id=elem_id)
    if spec.media:
        return _media_widget(spec, common)
    if spec.type == "array":
        return _array_widget(spec, common, adapters)
    if spec.choices:
        return gr.Dropdown(choices=list(spec.choices), value=spec.default, **common)
    if spec.type == "boolean":
        return gr.Checkbox(value=bool(spec.default), **common)
    if spec.type in ("integer", "number"):
        return _number_widget(spec, common)
    if spec.type == "object":
        return gr.Code(value=json.dumps(spec.default or {}, indent=1), language="json", **_no_info(common))
    return gr.Textbox(value=spec.default or "", lines=3 if spec.multiline else 1, **common)


def _no_info(common: dict) -> dict:
    return {k: v for k, v in common.items() if k != "info"}


def _media_widget(spec: FieldSpec, common: dict):
    import gradio as gr

    kind = spec.media
    if kind == "image":
        return gr.Image(type="filepath", sources=["upload", "clipboard"], **_no_info(common))
    if kind == "mask":
        # paint the mask over an uploaded reference (or upload a black/white mask as background)
        return gr.ImageEditor(type="numpy", sources=["upload", "clipboard"], layers=False,
                              brush=gr.Brush(colors=["#ffffff"], color_mode="fixed"), **_no_info(common))
    if kind == "video":
        return gr.Video(sources=["upload"], **_no_info(common))
    if kind == "audio":
        return gr.Audio(type="filepath", sources=["upload", "microphone"], **_no_info(common))
    if kind == "mesh":
        return gr.Model3D(**_no_info(common))
    return gr.File(file_types=[".mid", ".midi"] if kind == "midi" else None, type="filepath", **_no_info(common))


def _array_widget(spec: FieldSpec, common: dict, adapters: Callable[[], list[str]]):
    import gradio as gr

    if spec.item_type in ("integer", "number"):
        value = ", ".join(str(v) for v in spec.default or [])
        return gr.Textbox(value=value, placeholder="comma-separated numbers", **common)
    choices = list(spec.choices) or (adapters() if spec.name == "adapters" else [])
    return gr.Dropdown(choices=choices, value=list(spec.default or []), multiselect=True,
                       allow_custom_value=not spec.choices, **common)


def _number_widget(spec: FieldSpec, common: dict):
    import gradio as gr

    integer = spec.type == "integer"
    if spec.bounded and not spec.nullable and spec.maximum - spec.minimum <= SLIDER_MAX_SPAN:
        step = 1 if integer else (spec.maximum - spec.minimum) / 100
        value = spec.default if spec.default is not None else spec.minimum
        return gr.Slider(minimum=spec.minimum, maximum=spec.maximum, step=step, value=value, **common)
    if spec.nullable:
        # gr.Number cannot be empty (it shows 0), and empty means something here ("pick a seed")
        value = "" if spec.default is None else str(spec.default)
        return gr.Textbox(value=value, placeholder="empty = automatic", max_lines=1, **common)
    return gr.Number(value=spec.default, minimum=spec.minimum, maximum=spec.maximum,
                     precision=0 if integer else None, **common)


# -- values -------------------------------------------------------------------------------------


def to_spec_value(spec: FieldSpec, value: Any, uploads: UploadStore) -> Any:
    """A widget's value → the JSON value of the job spec (validation happens in the task)."""
    if spec.media:
        return _media_value(spec, value, uploads)
    if spec.type == "array" and spec.item_type in ("integer", "number"):
        return _parse_numbers(spec, value)
    if spec.type == "object":
        return _parse_json(spec, value)
    if spec.type in ("integer", "number") and isinstance(value, str):
        return _parse_number(spec, value)
    if spec.type == "integer" and isinstance(value, float) and value.is_integer():
        return int(value)
    if value == "" and (spec.nullable or not spec.required):
        return None
    return value


def _parse_json(spec: FieldSpec, value: Any) -> Any:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return json.loads(value)
    except ValueError as exc:
        raise ValueError(f"{spec.name}: not valid JSON ({exc})") from None


def _parse_number(spec: FieldSpec, value: str) -> float | int | str | None:
    """A nullable number's text box: empty → None; a number → int/float; else left for the schema to name."""
    text = value.strip()
    if not text:
        return None
    try:
        number = float(text)
    except ValueError:
        return text  # the task's validation answers "seed: Input should be a valid integer"
    return int(number) if spec.type == "integer" and number.is_integer() else number


def _parse_numbers(spec: FieldSpec, value: Any) -> list[float] | None:
    if value is None or not str(value).strip():
        return None
    cast = int if spec.item_type == "integer" else float
    try:
        return [cast(v) for v in str(value).replace(";", ",").split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{spec.name}: not a list of {spec.item_type}s: {value!r}") from None


def _media_value(spec: FieldSpec, value: Any, uploads: UploadStore) -> str | None:
    if value is None:
        return None
    if spec.media == "mask":
        return _mask_value(value, uploads)
    path = value.get("path") if isinstance(value, dict) else value  # gr.File/Model3D may give FileData
    if not path:
        return None
    if uploads.contains(path):
        return str(path)  # already ours ("use these settings again")
    return str(uploads.save_file(path, spec.media).path)


def _mask_value(value: dict, uploads: UploadStore) -> str | None:
    """Painted strokes (alpha of the layers) win; with none, the background itself is the mask."""
    background = value.get("background")
    layers = [np.asarray(layer) for layer in value.get("layers") or [] if layer is not None]
    painted = [layer[..., 3] > 0 for layer in layers if layer.ndim == 3 and layer.shape[-1] == 4 and layer[..., 3].any()]
    if painted:
        mask = np.logical_or.reduce(painted)  # (H, W) bool
    elif background is not None:
        bg = np.asarray(background).astype(np.float32)
        gray = bg[..., :3].mean(-1) if bg.ndim == 3 else bg  # (H, W)
        mask = gray > 127
    else:
        return None
    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mask.png"
        Image.fromarray(mask.astype(np.uint8) * 255).save(path)
        return str(uploads.save_file(path, "mask").path)


def to_widget_value(spec: FieldSpec, value: Any) -> Any:
    """A job spec's value → what the widget shows ("use these settings again")."""
    if value is None:
        return "" if (spec.type == "string" or spec.nullable) and not spec.media and not spec.choices else None
    if spec.nullable and spec.type in ("integer", "number") and not spec.choices:
        return str(value)
    if spec.media == "mask":
        return {"background": value, "layers": [], "composite": value}
    if spec.type == "array" and spec.item_type in ("integer", "number"):
        return ", ".join(str(v) for v in value)
    if spec.type == "object":
        return json.dumps(value, indent=1)
    return value
