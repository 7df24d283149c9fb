from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Response
from fastapi.exceptions import RequestValidationError
from pydantic import Field, ValidationError

from studio.api.context import ApiContext, get_context
from studio.api.errors import UnknownTask, field_errors
from studio.api.media_paths import check_media_paths
from studio.api.schemas import MAX_BATCH, JobOut, MoveRequest, SubmitRequest
from studio.jobs.errors import BatchItemError
from studio.jobs import plugins
from studio.tasks.base import InputError

router = APIRouter(prefix="/api/jobs", tags=["jobs"])

Status = Annotated[str, Field(pattern="^(queued|running|succeeded|failed|canceled)$")]
Batch = Annotated[list[SubmitRequest], Field(min_length=1, max_length=MAX_BATCH)]
NOT_FOUND = {404: {"description": "No such job"}}
CONFLICT = {409: {"description": "The job is not in a state that allows this"}}


def job_out(ctx: ApiContext, job: dict[str, Any]) -> dict[str, Any]:
    position = ctx.queue.position(job["id"]) if job["status"] == "queued" else None
    return {**job, "queue_position": position, "cancel_requested": bool(job.get("cancel_requested"))}


def _precheck(ctx: ApiContext, item: SubmitRequest) -> None:
    """What the queue cannot know: the task exists here and media paths stay in our folders."""
    try:
        task = plugins.get_task(item.task)
    except KeyError as exc:
        raise UnknownTask(item.task, str(exc.args[0])) from None
    check_media_paths(task, item.inputs, ctx.media_roots)


def _submit_one(ctx: ApiContext, item: SubmitRequest) -> dict:
    try:
        _precheck(ctx, item)
        job = ctx.queue.submit(item.task, item.inputs, priority=item.priority)
    except (ValidationError, InputError, UnknownTask) as exc:
        raise RequestValidationError(field_errors(exc)) from None
    except KeyError as exc:  # the queue's own unknown-task answer
        raise RequestValidationError(field_errors(UnknownTask(item.task, str(exc.args[0])))) from None
    return job_out(ctx, job)


def _submit_many(ctx: ApiContext, items: list[SubmitRequest]) -> list[dict]:
    for index, item in enumerate(items):
        try:
            _precheck(ctx, item)
        except (InputError, UnknownTask) as exc:
            raise RequestValidationError(field_errors(exc, ("body", index, "inputs"))) from None
    payload = [item.model_dump() for item in items]
    try:
        jobs = ctx.queue.submit_many([{"task": p["task"], "inputs": p["inputs"], "priority": p["priority"]} for p in payload])
    except BatchItemError as exc:
        raise RequestValidationError(field_errors(exc.error, ("body", exc.index, "inputs"))) from None
    return [job_out(ctx, job) for job in jobs]


@router.post("", status_code=201, response_model=JobOut | list[JobOut], responses={413: {"description": "Body too large"}},
             summary="Submit one job, or a list of jobs (all validated before any is queued)")
def submit(body: Annotated[SubmitRequest | Batch, Body()], ctx: ApiContext = Depends(get_context)):
    if isinstance(body, list):
        return _submit_many(ctx, body)
    return _submit_one(ctx, body)


@router.get("", response_model=list[JobOut], summary="List jobs: queued in run order first, then newest first")
def list_jobs(
    status: Annotated[list[Status] | None, Query()] = None,
    task: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
    ctx: ApiContext = Depends(get_context),
) -> list[dict]:
    jobs = ctx.queue.list(status=status or None, task=task, limit=limit, offset=offset)
    return [job_out(ctx, job) for job in jobs]


@router.get("/{job_id}", response_model=JobOut, responses=NOT_FOUND)
def get_job(job_id: str, ctx: ApiContext = Depends(get_context)) -> dict:
    return job_out(ctx, ctx.queue.get(job_id))


@router.post("/{job_id}/cancel", response_model=JobOut, responses={**NOT_FOUND, **CONFLICT},
             summary="Cancel: a queued job at once, a running one at its next step")
def cancel_job(job_id: str, ctx: ApiContext = Depends(get_context)) -> dict:
    return job_out(ctx, ctx.queue.cancel(job_id))


@router.post("/{job_id}/retry", response_model=JobOut, responses={**NOT_FOUND, **CONFLICT},
             summary="Requeue a failed or canceled job with the same seed")
def retry_job(job_id: str, ctx: ApiContext = Depends(get_context)) -> dict:
    return job_out(ctx, ctx.queue.retry(job_id))


@router.post("/{job_id}/move", response_model=JobOut, responses={**NOT_FOUND, **CONFLICT},
             summary='Reorder a queued job ("front" runs it next)')
def move_job(job_id: str, body: MoveRequest, ctx: ApiContext = Depends(get_context)) -> dict:
    ctx.queue.move(job_id, body.to)
    return job_out(ctx, ctx.queue.get(job_id))


@router.delete("/{job_id}", status_code=204, responses={**NOT_FOUND, **CONFLICT},
               summary="Delete a finished job's record (its outputs stay on disk)")
def delete_job(job_id: str, ctx: ApiContext = Depends(get_context)) -> Response:
    ctx.queue.delete(job_id)
    return Response(status_code=204)
