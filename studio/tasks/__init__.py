"""Task plugins. Each sub-package has model.py, data.py, pipeline.py, metrics.py, task.py."""

from studio.tasks.base import (  # noqa: F401
    Canceled,
    CancelToken,
    InputError,
    ModelKey,
    OutputFile,
    RunContext,
    Task,
    TaskInputs,
    TaskResult,
)
