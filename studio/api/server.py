"""``studio serve``: the job service + API + web app in one process, on 127.0.0.1 by default."""

from __future__ import annotations

import os
from pathlib import Path

from studio import paths
from studio.api.auth import check_bind


def serve(host: str = "127.0.0.1", port: int = 7860, token: str | None = None, workers: int = 1,
          db_path: str | os.PathLike | None = None, outputs_dir: str | os.PathLike | None = None,
          executor: str = "local", log_level: str = "info") -> None:
    token = token or os.environ.get("STUDIO_API_TOKEN") or None
    check_bind(host, token)  # before anything starts: an exposed server without a token never runs
    import uvicorn

    from studio.api.app import ApiSettings, create_app
    from studio.jobs.service import JobService

    db = Path(db_path) if db_path else paths.state_dir() / "jobs.db"
    out = Path(outputs_dir) if outputs_dir else paths.outputs_dir()
    db.parent.mkdir(parents=True, exist_ok=True)
    service = JobService(db, out, executor=executor, workers=workers)
    service.start()
    try:
        app = create_app(service, token=token, settings=ApiSettings(outputs_dir=out))
        uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=3)
    finally:
        service.stop()
