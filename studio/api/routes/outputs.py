"""Downloads from the outputs folder, and nothing outside it.

Refused: ``..`` segments, absolute paths, hidden parts (``.staging`` holds half-written jobs),
and anything whose real path — after following symlinks — leaves the outputs root.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import FileResponse

from studio.api.context import ApiContext, get_context

router = APIRouter(tags=["outputs"])


def resolve_output(root: Path, rel: str) -> Path:
    parts = PurePosixPath(rel.replace("\\", "/")).parts
    if not parts or rel.startswith(("/", "\\")) or ":" in parts[0]:
        raise HTTPException(400, "path must be relative to the outputs folder")
    if any(p in ("..", ".") or p.startswith(".") or "\x00" in p for p in parts):
        raise HTTPException(400, "path may not contain '..', '.' or hidden parts")
    real_root = root.resolve()
    target = (real_root.joinpath(*parts)).resolve()
    if not target.is_relative_to(real_root) or not target.is_file():
        raise HTTPException(404, "no such output")
    return target


@router.get("/api/outputs/{path:path}", response_class=FileResponse,
            responses={200: {"content": {"application/octet-stream": {}}}, 400: {"description": "Bad path"},
                       404: {"description": "No such output"}},
            summary="Download an output file (paths as in a job's result.files)")
def download(path: str, ctx: ApiContext = Depends(get_context)) -> FileResponse:
    return FileResponse(resolve_output(ctx.outputs_root, path))
