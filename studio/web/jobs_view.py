"""Job dicts → what the screens show (rows, status lines, previews, result files). No gradio here."""

from __future__ import annotations

import base64
import io
import time
from pathlib import Path
from typing import Any

QUEUE_COLUMNS = ["job", "task", "status", "#", "progress", "message", "age"]
FINISHED = ("succeeded", "failed", "canceled")


def short(job_id: str) -> str:
    return job_id[:8]


def age(ts: float | None, now: float | None = None) -> str:
    if not ts:
        return ""
    s = max(0, int((now or time.time()) - ts))
    return f"{s}s" if s < 60 else f"{s // 60}m" if s < 3600 else f"{s // 3600}h"


def queue_row(job: dict[str, Any], position: int | None) -> list[Any]:
    return [short(job["id"]), job["task"], job["status"], "" if position is None else position,
            f"{round(100 * (job.get('progress') or 0))}%", (job.get("message") or "")[:60], age(job.get("created_at"))]


def status_line(job: dict[str, Any], position: int | None) -> str:
    parts = [f"**{job['task']}** `{short(job['id'])}`", job["status"]]
    if position is not None:
        parts.append(f"position {position}")
    if job["status"] == "running" or job.get("progress"):
        parts.append(f"{round(100 * (job.get('progress') or 0))}%")
    if job.get("message"):
        parts.append(job["message"])
    if job.get("cancel_requested") and job["status"] == "running":
        parts.append("cancel requested")
    if job["status"] == "failed" and job.get("error"):
        err = job["error"]
        parts.append(f"{err.get('type', 'Error')}: {err.get('message', '')}")
    return " · ".join(str(p) for p in parts)


def progress_html(job: dict[str, Any]) -> str:
    pct = round(100 * (job.get("progress") or 0))
    color = {"failed": "#c0392b", "canceled": "#7f8c8d", "succeeded": "#27ae60"}.get(job["status"], "#2980b9")
    return (f'<div class="studio-progress" data-status="{job["status"]}" data-progress="{pct}">'
            f'<div style="width:{pct}%;background:{color}"></div><span>{pct}%</span></div>')


def preview_image(data_url: str | None):
    """The ``data:image/png;base64,...`` preview of a progress event → PIL image."""
    if not data_url or "," not in data_url:
        return None
    from PIL import Image

    raw = base64.b64decode(data_url.split(",", 1)[1])
    return Image.open(io.BytesIO(raw)).convert("RGB")


def latest_preview(events: list[dict[str, Any]]) -> str | None:
    for event in reversed(events):
        preview = (event.get("data") or {}).get("preview")
        if event["type"] == "progress" and preview:
            return preview
    return None


def result_files(job: dict[str, Any], outputs_root: Path) -> list[dict[str, Any]]:
    """The job's files with absolute paths (for viewers) and API links (for downloads)."""
    files = ((job.get("result") or {}).get("files")) or []
    out = []
    for f in files:
        rel = f["path"]
        out.append({"kind": f.get("kind", ""), "label": f.get("label", ""), "rel": rel,
                    "abs": str(outputs_root / rel), "url": f"/api/outputs/{rel}"})
    return out


def first_of(files: list[dict[str, Any]], kind: str) -> str | None:
    return next((f["abs"] for f in files if f["kind"] == kind and Path(f["abs"]).is_file()), None)


def links_markdown(files: list[dict[str, Any]]) -> str:
    return "\n".join(f"- [{Path(f['rel']).name}]({f['url']}) ({f['kind']}{', ' + f['label'] if f['label'] else ''})"
                     for f in files)
