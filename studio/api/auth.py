"""API token: who may bind where, and the bearer check in front of every route.

Binding a loopback address needs no token (only this machine can connect). Any other address
needs one, and then every request — REST, server-sent events, downloads and the web app — must
carry it: as ``Authorization: Bearer <token>`` (API clients) or as the ``studio_token`` cookie
(browsers; opening ``/?token=<token>`` once sets it, because a browser cannot add a header to
the page loads and websocket/SSE requests the web app makes).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from http.cookies import SimpleCookie
from urllib.parse import parse_qs

COOKIE = "studio_token"
LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


class TokenRequired(ValueError):
    """Refusal to serve a non-loopback address without an API token."""


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a hostname we cannot vouch for: treat as exposed


def check_bind(host: str, token: str | None) -> None:
    """Raise ``TokenRequired`` when ``host`` is reachable from other machines and no token is set."""
    if not is_loopback(host) and not token:
        raise TokenRequired(
            f"refusing to bind {host!r} without an API token: pass --token (or STUDIO_API_TOKEN), "
            "or bind 127.0.0.1"
        )


def _presented_tokens(scope) -> tuple[list[str], str | None]:
    """Tokens the request carries (header, cookie, ``?token=``); the last is returned apart."""
    found: list[str] = []
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
    scheme, _, value = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value:
        found.append(value.strip())
    if "cookie" in headers:
        cookie = SimpleCookie()
        try:
            cookie.load(headers["cookie"])
        except Exception:  # malformed cookie header: ignore it, the other carriers still count
            cookie = SimpleCookie()
        if COOKIE in cookie:
            found.append(cookie[COOKIE].value)
    query = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [None])[0]
    return found, query


class BearerAuth:
    """Pure ASGI middleware (it must not buffer: SSE streams pass through it)."""

    def __init__(self, app, token: str):
        self.app = app
        self.token = token

    def _ok(self, candidate: str | None) -> bool:
        return bool(candidate) and hmac.compare_digest(candidate.encode(), self.token.encode())

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        carried, query = _presented_tokens(scope)
        if any(self._ok(t) for t in carried):
            return await self.app(scope, receive, send)
        if self._ok(query):
            return await self.app(scope, receive, _setting_cookie(send, self.token))
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        body = json.dumps({"detail": "missing or wrong API token (Authorization: Bearer <token>)"}).encode()
        await send({
            "type": "http.response.start",
            "status": 401,
            "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer"),
                        (b"content-length", str(len(body)).encode())],
        })
        await send({"type": "http.response.body", "body": body})


def _setting_cookie(send, token: str):
    """Wrap ``send`` so the response sets the token cookie (browser logged in by ``?token=``)."""
    cookie = f"{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict".encode("latin-1")

    async def wrapped(message):
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), (b"set-cookie", cookie)]}
        await send(message)

    return wrapped
