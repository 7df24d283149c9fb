"""Property-based run of the OpenAPI contract (schemathesis): no request may produce a 5xx,
and every response must match the documented schema.

The app runs over a bare ``JobQueue`` (no workers), so generated jobs are stored, listed,
moved, canceled, retried and deleted but never executed. ``/api/events`` is excluded: it is an
endless stream by design (its job-scoped sibling ends and is covered).
"""

from __future__ import annotations

import os

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import response_schema_conformance  # noqa: E402

from tests.test_api_support import EXTRA_TASKS  # noqa: E402

MAX_EXAMPLES = int(os.environ.get("STUDIO_FUZZ_EXAMPLES", "15"))  # raise it for a deeper run


def _schema():
    """Built at import: schemathesis' parametrize needs the schema when tests are collected."""
    import tempfile
    from pathlib import Path

    from studio.api.app import ApiSettings, create_app
    from studio.api.uploads import UploadLimits
    from studio.jobs.plugins import load_extra_tasks
    from studio.jobs.queue import JobQueue

    root = Path(tempfile.mkdtemp(prefix="studio-fuzz-"))
    load_extra_tasks(EXTRA_TASKS)
    (root / "outputs" / "2026-01-01").mkdir(parents=True)
    (root / "outputs" / "2026-01-01" / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    settings_ = ApiSettings(outputs_dir=root / "outputs", uploads_dir=root / "uploads",
                            upload_limits=UploadLimits(max_bytes=100_000), mount_web=False, poll_s=0.01)
    app = create_app(JobQueue(root / "jobs.db"), settings=settings_)
    return schemathesis.openapi.from_asgi("/openapi.json", app).exclude(path="/api/events")


schema = _schema()


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors_and_responses_match_schema(case):
    case.call_and_validate(checks=[not_a_server_error, response_schema_conformance])
