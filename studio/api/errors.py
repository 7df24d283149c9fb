"""Domain errors → HTTP answers. Every 4xx body names the offending field in FastAPI's own
``{"detail": [{"loc": [...], "msg": ..., "type": ...}]}`` shape, so clients parse one format."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from pydantic import ValidationError

from studio.api.uploads import UploadRejected
from studio.jobs.errors import BatchItemError, JobNotFound, JobStateError
from studio.tasks.base import InputError


class UnknownTask(LookupError):
    def __init__(self, name: str, message: str):
        super().__init__(message)
        self.name = name


def field_errors(exc: Exception, prefix: tuple = ("body", "inputs")) -> list[dict]:
    """Task-input errors as FastAPI-style detail items, ``loc`` ending in the field name."""
    if isinstance(exc, ValidationError):
        return [
            {"loc": [*prefix, *e["loc"]], "msg": e["msg"], "type": e["type"]}
            for e in exc.errors(include_url=False, include_context=False, include_input=False)
        ]
    if isinstance(exc, InputError):
        return [{"loc": [*prefix, exc.field], "msg": exc.message, "type": "value_error"}]
    if isinstance(exc, (UnknownTask, KeyError)):  # the task name, not an input, is wrong
        msg = str(exc) if isinstance(exc, UnknownTask) else str(exc.args[0] if exc.args else exc)
        return [{"loc": [*prefix[:-1], "task"], "msg": msg, "type": "unknown_task"}]
    return [{"loc": list(prefix), "msg": str(exc), "type": "value_error"}]


# ``POST /api/jobs`` takes one job or a list; pydantic reports both union branches, tagged in ``loc``
UNION_BRANCHES = {"SubmitRequest": dict, "list[SubmitRequest]": list}


def clean_union_errors(errors: list[dict], body) -> list[dict]:
    """Keep the errors of the branch the body's JSON type selects, without the branch tag in ``loc``."""
    cleaned = []
    for e in errors:
        loc = list(e.get("loc", ()))
        if len(loc) > 1 and loc[0] == "body" and loc[1] in UNION_BRANCHES:
            if not isinstance(body, UNION_BRANCHES[loc[1]]):
                continue
            loc = [loc[0], *loc[2:]]
        cleaned.append({**e, "loc": loc})
    return cleaned or errors


def _detail(status: int, detail) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


def allowed_methods(app: FastAPI, path: str) -> list[str]:
    """Every method of every route on ``path`` (Starlette's 405 lists only the first route's)."""
    methods: set[str] = set()
    for route in app.routes:
        if isinstance(route, APIRoute) and route.path_regex.match(path):
            methods |= route.methods or set()
    return sorted(methods)


def install(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        if exc.status_code == 405:
            allow = ", ".join(allowed_methods(app, request.url.path))
            return JSONResponse({"detail": "Method Not Allowed"}, status_code=405, headers={"Allow": allow})
        if exc.status_code == 400 and exc.detail == "There was an error parsing the body":
            return _detail(422, [{"loc": ["body"], "msg": "the body could not be parsed", "type": "body_parsing"}])
        return await http_exception_handler(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        return _detail(422, jsonable_encoder(clean_union_errors(list(exc.errors()), exc.body)))

    @app.exception_handler(JobNotFound)
    async def _not_found(request: Request, exc: JobNotFound):
        return _detail(404, str(exc))

    @app.exception_handler(JobStateError)
    async def _state(request: Request, exc: JobStateError):
        return _detail(409, str(exc))

    @app.exception_handler(UnknownTask)
    async def _unknown(request: Request, exc: UnknownTask):
        return _detail(422, field_errors(exc))

    @app.exception_handler(BatchItemError)
    async def _batch(request: Request, exc: BatchItemError):
        return _detail(422, field_errors(exc.error, ("body", exc.index, "inputs")))

    @app.exception_handler(UploadRejected)
    async def _upload(request: Request, exc: UploadRejected):
        return _detail(exc.status, [{"loc": ["body", exc.field], "msg": exc.message, "type": "upload_rejected"}])
