from __future__ import annotations

from fastapi import APIRouter, Depends

import studio
from studio.api.context import ApiContext, get_context
from studio.api.schemas import HealthOut
from studio.jobs import plugins
from studio.tasks import registry

router = APIRouter(tags=["health"])


@router.get("/api/health", response_model=HealthOut)
def health(ctx: ApiContext = Depends(get_context)) -> dict:
    return {
        "status": "ok",
        "version": studio.__version__,
        "paused": ctx.queue.is_paused(),
        "counts": ctx.queue.counts(),
        "tasks": sorted(plugins.all_tasks()),
        "plugin_errors": registry.load_errors(),
    }
