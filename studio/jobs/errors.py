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


def describe_error(exc: Exception) -> str:
    """A validation error as 'field: message' parts (pydantic errors, InputError, KeyError, others)."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        try:
            return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'inputs'}: {e['msg']}" for e in errors())
        except Exception:
            pass
    if isinstance(exc, KeyError) and exc.args:
        return str(exc.args[0])
    return str(exc)
