"""What every route needs, built once by ``create_app`` and kept on ``app.state.studio``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fastapi import Request

from studio.api.uploads import UploadStore


@dataclass
class ApiContext:
    queue: object  # studio.jobs.queue.JobQueue
    outputs_root: Path
    uploads: UploadStore
    media_roots: tuple[Path, ...]  # where a media input may point (uploads, outputs, datasets)
    poll_s: float = 0.2  # how often an event stream looks at the events table
    keepalive_s: float = 15.0  # SSE comment line so proxies keep an idle stream open


def get_context(request: Request) -> ApiContext:
    return request.app.state.studio
