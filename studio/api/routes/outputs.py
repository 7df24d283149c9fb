"""Downloads from the outputs folder, and nothing outside it.

Refused with the same 404 as a missing file (nothing is revealed about what lies outside):
``..`` segments, absolute paths, drive letters, hidden parts (``.staging`` holds half-written
jobs), and anything whose real path — after following symlinks — leaves the outputs root.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import FileResponse

from studio.api.context import ApiContext, get_context

router = APIRouter(tags=["outputs"])


NOT_FOUND = "no such output"


def resolve_output(root: Path, rel: str) -> Path:
    rel = rel.replace("\\", "/")
    parts = PurePosixPath(rel).parts
    if not parts or rel.startswith("/") or re.match(r"^[A-Za-z]:", rel):
        raise HTTPException(404, NOT_FOUND)
    if any(p.startswith(".") or "\x00" in p for p in parts):  # covers "..", "." and hidden folders
        raise HTTPException(404, NOT_FOUND)
    real_root = root.resolve()
    target = real_root.joinpath(*parts).resolve()  # follows symlinks, so a link out of the root is caught
    if not target.is_relative_to(real_root) or not target.is_file():
        raise HTTPException(404, NOT_FOUND)
    return target


@router.get("/api/outputs/{path:path}", response_class=FileResponse,
            responses={200: {"content": {"application/octet-stream": {}}}, 404: {"description": "No such output"}},
            summary="Download an output file (paths as in a job's result.files)")
def download(path: str, ctx: ApiContext = Depends(get_context)) -> FileResponse:
    return FileResponse(resolve_output(ctx.outputs_root, path))
