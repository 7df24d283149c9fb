"""Errors of the job system; front-ends map them to HTTP codes / exit codes."""

from __future__ import annotations


class JobNotFound(KeyError):
    def __init__(self, job_id: str):
        super().__init__(job_id)
        self.job_id = job_id

    def __str__(self) -> str:
        return f"no job with id {self.job_id!r}"


class JobStateError(ValueError):
    """The operation does not apply to the job in its current state (e.g. retry a running job)."""


class BatchItemError(ValueError):
    """Item ``index`` of a ``submit_many`` batch failed validation; ``error`` is the original error."""

    def __init__(self, index: int, error: Exception):
        super().__init__(f"item {index}: {error}")
        self.index = index
        self.error = error


class CoordinatorLocked(RuntimeError):
    """Another coordinator (``studio serve`` / ``studio worker``) already runs on this database."""
