"""Server-sent events from the job table's ``events`` log.

Each SSE message carries the event's table id as its ``id:``, so a browser's ``EventSource``
(or any client) that reconnects sends ``Last-Event-ID`` and gets exactly what it missed. A
job's stream ends after the job has finished and every event up to then has been sent; the
queue-wide stream ``/api/events`` never ends.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Annotated, AsyncIterator

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse

from studio.api.context import ApiContext, get_context
from studio.jobs.errors import JobNotFound

router = APIRouter(tags=["events"])

FINISHED = ("succeeded", "failed", "canceled")
BATCH = 500
SSE_RESPONSE = {200: {"content": {"text/event-stream": {}}, "description": "A stream of server-sent events"}}


def format_event(event: dict) -> str:
    data = json.dumps({k: event.get(k) for k in ("id", "job_id", "type", "data", "created_at")}, separators=(",", ":"))
    return f"id: {event['id']}\nevent: {event['type']}\ndata: {data}\n\n"


def _start_id(last_event_id: str | None, after: int | None) -> int:
    """``Last-Event-ID`` (a reconnect) wins over ``?after=`` (a client resuming by hand)."""
    return int(last_event_id) if last_event_id else after or 0


async def _job_finished(ctx: ApiContext, job_id: str) -> bool:
    try:
        job = await asyncio.to_thread(ctx.queue.get, job_id)
    except JobNotFound:
        return True  # deleted while watched: nothing more will come
    return job["status"] in FINISHED


async def stream(ctx: ApiContext, request: Request, after_id: int, job_id: str | None) -> AsyncIterator[str]:
    last, quiet_finished, last_sent = after_id, 0, time.monotonic()
    yield "retry: 1000\n\n"  # reconnect fast after a dropped connection
    while not await request.is_disconnected():
        finished = job_id is not None and await _job_finished(ctx, job_id)  # read before the events
        events = await asyncio.to_thread(ctx.queue.events, after_id=last, job_id=job_id, limit=BATCH)
        for event in events:
            last = event["id"]
            yield format_event(event)
        if events:
            last_sent, quiet_finished = time.monotonic(), 0
            if len(events) == BATCH:
                continue  # more are waiting: no sleep
        elif finished:
            # two quiet polls after the finish: the final event, if written just after the status, is out
            quiet_finished += 1
            if quiet_finished >= 2:
                return
        if time.monotonic() - last_sent > ctx.keepalive_s:
            last_sent = time.monotonic()
            yield ": keepalive\n\n"
        await asyncio.sleep(ctx.poll_s)


def _response(gen: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(gen, media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


LastEventId = Annotated[str | None, Header(alias="Last-Event-ID", pattern=r"^[0-9]{1,18}$",
                                          description="Id of the last event received; the stream resumes after it.")]
After = Annotated[int | None, Query(ge=0, le=2**62, description="Resume after this event id (same as Last-Event-ID).")]


@router.get("/api/jobs/{job_id}/events", response_class=StreamingResponse,
            responses={**SSE_RESPONSE, 404: {"description": "No such job"}},
            summary="One job's events (progress with previews, state changes) as server-sent events")
async def job_events(job_id: str, request: Request, last_event_id: LastEventId = None, after: After = None,
                     ctx: ApiContext = Depends(get_context)) -> StreamingResponse:
    start = _start_id(last_event_id, after)
    await asyncio.to_thread(ctx.queue.get, job_id)  # 404 before the stream opens
    return _response(stream(ctx, request, start, job_id))


@router.get("/api/events", response_class=StreamingResponse, responses=SSE_RESPONSE,
            summary="Every job's events and queue-wide ones (pause/resume) as server-sent events")
async def all_events(request: Request, last_event_id: LastEventId = None, after: After = None,
                     ctx: ApiContext = Depends(get_context)) -> StreamingResponse:
    return _response(stream(ctx, request, _start_id(last_event_id, after), None))
