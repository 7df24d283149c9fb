"""Request-body limits for ``/api/``: a huge request is refused before anything reads it.

Checked on the declared ``Content-Length`` and again on the bytes actually received (chunked
bodies declare none). The web app's own routes keep gradio's limit (``max_file_size``).
"""

from __future__ import annotations

import json


class BodyTooLarge(Exception):
    pass


class BodyLimit:
    def __init__(self, app, json_max: int, upload_max: int, upload_path: str = "/api/uploads"):
        self.app = app
        self.json_max = json_max
        self.upload_max = upload_max
        self.upload_path = upload_path

    def _limit(self, path: str) -> int | None:
        if not path.startswith("/api/"):
            return None
        return self.upload_max if path == self.upload_path else self.json_max

    async def __call__(self, scope, receive, send):
        limit = self._limit(scope.get("path", "")) if scope["type"] == "http" else None
        if limit is None:
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers", []))
        try:
            declared = int(headers.get(b"content-length", b"0") or 0)
        except ValueError:
            declared = 0
        if declared > limit:
            return await _reject(send, limit)
        started = False

        async def counting_receive():
            message = await receive()
            if message["type"] == "http.request":
                counting_receive.seen += len(message.get("body", b""))
                if counting_receive.seen > limit:
                    raise BodyTooLarge()
            return message

        counting_receive.seen = 0

        async def tracking_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await _reject(send, limit)


async def _reject(send, limit: int) -> None:
    body = json.dumps({"detail": [{"loc": ["body"], "msg": f"request body larger than {limit} bytes",
                                   "type": "too_large"}]}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
