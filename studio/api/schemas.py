"""Request and response bodies of the HTTP API (they are the OpenAPI contract)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_BATCH = 1000  # one request may submit at most this many jobs


class SubmitRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # no silent coercion ("5" → 5, false → 0)

    task: str = Field(..., min_length=1, max_length=100, description="Task name, as listed by GET /api/tasks.")
    inputs: dict[str, Any] = Field(default_factory=dict, description="The task's inputs (its JSON schema).")
    priority: int = Field(0, ge=-1000, le=1000, description="Higher runs first.")


class MoveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # no silent coercion ("5" → 5, false → 0)

    to: Literal["front", "back"] | int = Field(..., description='"front" (runs next), "back", or a 0-based index in the run order.')


class PruneRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True,
                              json_schema_extra={"anyOf": [{"required": ["keep_last"]}, {"required": ["older_than"]}]})

    keep_last: int | None = Field(None, ge=0, le=10**9, description="Keep this many newest finished jobs.")
    older_than: float | None = Field(None, ge=0, le=1e10, description="Delete finished jobs older than this many seconds.")

    @model_validator(mode="after")
    def _one_rule(self):
        if self.keep_last is None and self.older_than is None:
            raise ValueError("give keep_last and/or older_than")
        return self


class JobError(BaseModel):
    type: str = ""
    message: str = ""
    traceback: str = ""


class JobOut(BaseModel):
    id: str
    task: str
    status: Literal["queued", "running", "succeeded", "failed", "canceled"]
    priority: int
    queue_position: int | None = Field(None, description="0-based place in the run order while queued.")
    spec: dict[str, Any]
    seed: int | None = None
    progress: float = 0.0
    message: str | None = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    attempt: int = 1
    worker: str | None = None
    cancel_requested: bool = False
    created_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None


class TaskOut(BaseModel):
    name: str
    title: str
    description: str
    output_kinds: list[str]
    default_model: str | None
    input_schema: dict[str, Any] = Field(..., description="JSON schema of the task's inputs.")


class QueueOut(BaseModel):
    paused: bool
    counts: dict[str, int]


class HealthOut(BaseModel):
    status: Literal["ok"]
    version: str
    paused: bool
    counts: dict[str, int]
    tasks: list[str]
    plugin_errors: dict[str, str]


class UploadOut(BaseModel):
    path: str = Field(..., description="Server-side path; pass it as the value of a media input.")
    media: str
    size: int
    sha256: str
    filename: str
