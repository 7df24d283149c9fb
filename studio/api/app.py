"""The FastAPI application: REST + server-sent events, with the gradio web app mounted at ``/``.

``create_app`` only wires things; the job service's life (start/stop) belongs to its owner
(``serve()``, a test, an embedding app).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI

import studio
from studio import paths
from studio.api import errors
from studio.api.auth import BearerAuth
from studio.api.context import ApiContext
from studio.api.limits import BodyLimit
from studio.api.routes import events, health, jobs, library, outputs, queue, tasks, uploads
from studio.api.routes.uploads import MULTIPART_OVERHEAD
from studio.api.uploads import UploadLimits, UploadStore


@dataclass(frozen=True)
class ApiSettings:
    outputs_dir: Path | None = None  # default: the service's, else studio.paths.outputs_dir()
    uploads_dir: Path | None = None  # default: <state dir>/uploads
    upload_limits: UploadLimits = field(default_factory=UploadLimits)
    json_max_bytes: int = 2 * 2**20  # a 1000-job batch of ordinary inputs fits
    mount_web: bool = True
    poll_s: float = 0.2


def build_context(service, settings: ApiSettings) -> ApiContext:
    queue_ = getattr(service, "queue", service)  # a JobService, or a bare JobQueue
    outputs_root = Path(settings.outputs_dir or getattr(service, "outputs_dir", None) or paths.outputs_dir())
    uploads_root = Path(settings.uploads_dir or paths.state_dir() / "uploads")
    store = UploadStore(uploads_root, settings.upload_limits)
    roots = (uploads_root, outputs_root, paths.datasets_dir())
    return ApiContext(queue=queue_, outputs_root=outputs_root, uploads=store, media_roots=roots, poll_s=settings.poll_s)


def create_app(service, token: str | None = None, settings: ApiSettings = ApiSettings()) -> FastAPI:
    """The API (and web app) over ``service``; with ``token``, every route wants it as a bearer."""
    ctx = build_context(service, settings)
    app = FastAPI(title="Studio API", version=studio.__version__,
                  description="Multimodal generation studio: tasks, jobs, events, outputs, uploads.")
    app.state.studio = ctx
    errors.install(app)
    for module in (health, tasks, jobs, events, queue, outputs, uploads, library):
        app.include_router(module.router)
    if settings.mount_web:
        from studio.web.app import mount_web

        mount_web(app, ctx)
    app.add_middleware(BodyLimit, json_max=settings.json_max_bytes,
                       upload_max=settings.upload_limits.max_bytes + MULTIPART_OVERHEAD)
    if token:
        app.add_middleware(BearerAuth, token=token)  # added last = outermost: nothing runs unauthenticated
    return app
