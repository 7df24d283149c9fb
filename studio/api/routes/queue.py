from __future__ import annotations

from fastapi import APIRouter, Depends

from studio.api.context import ApiContext, get_context
from studio.api.schemas import PruneRequest, QueueOut

router = APIRouter(prefix="/api/queue", tags=["queue"])


def _state(ctx: ApiContext) -> dict:
    return {"paused": ctx.queue.is_paused(), "counts": ctx.queue.counts()}


@router.get("", response_model=QueueOut)
def queue_state(ctx: ApiContext = Depends(get_context)) -> dict:
    return _state(ctx)


@router.post("/pause", response_model=QueueOut, summary="Stop starting new jobs (running ones finish)")
def pause(ctx: ApiContext = Depends(get_context)) -> dict:
    ctx.queue.pause()
    return _state(ctx)


@router.post("/resume", response_model=QueueOut)
def resume(ctx: ApiContext = Depends(get_context)) -> dict:
    ctx.queue.resume()
    return _state(ctx)


@router.post("/prune", summary="Delete finished jobs' records beyond keep_last and/or older than older_than s")
def prune(body: PruneRequest, ctx: ApiContext = Depends(get_context)) -> dict:
    return {"deleted": ctx.queue.prune(keep_last=body.keep_last, older_than=body.older_than)}
