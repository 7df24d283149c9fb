from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, File, Form, UploadFile

from studio.api.context import ApiContext, get_context
from studio.api.schemas import UploadOut

router = APIRouter(tags=["uploads"])

MediaKind = Literal["image", "mask", "video", "audio", "midi", "mesh"]
MULTIPART_OVERHEAD = 64 * 1024  # the body limit of this route = file limit + form framing


async def _chunks(upload: UploadFile):
    while chunk := await upload.read(1 << 20):
        yield chunk


@router.post("/api/uploads", status_code=201, response_model=UploadOut,
             responses={413: {"description": "Too large"}, 415: {"description": "Not a supported media type"}},
             summary="Upload a media file; the returned path is a valid value for a task's media input")
async def upload(
    file: Annotated[UploadFile, File(description="The media file")],
    media: Annotated[MediaKind | None, Form(description="Expected kind; the file's bytes must match it")] = None,
    ctx: ApiContext = Depends(get_context),
) -> dict:
    stored = await ctx.uploads.save_stream(_chunks(file), file.filename or "upload", media)
    return {"path": str(stored.path), "media": stored.media, "size": stored.size,
            "sha256": stored.sha256, "filename": stored.filename}
