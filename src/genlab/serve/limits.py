"""What stands in front of every endpoint: API keys, body size limits, CORS, and headers for the studio's pages.

- **Keys**: when ``--require-key`` is on (the default off loopback), every ``/v1`` request carries
  ``Authorization: Bearer gl-...`` (``genlab keys create-api``); the studio's pages and the OpenAPI schema are open.
- **Size**: a JSON body over ``--max-body`` bytes, or an upload over ``--max-upload``, is refused with 413 before it
  is read in full (a body without a Content-Length is counted as it arrives); a body that takes longer than
  ``body_timeout`` seconds to arrive gets 408.
- **CORS** is closed: browsers let only the studio's own pages call the API, unless ``--cors ORIGIN`` opens it.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fastapi import FastAPI

from genlab.serve.config import ServeConfig
from genlab.serve.errors import body
from genlab.serve.keys import KeyRing

UPLOADS = ("/v1/verify", "/v1/detect")  # endpoints that take files
OPEN = ("/v1/health",)  # answered without a key (liveness probes of a load balancer)
HEADERS = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
           (b"x-frame-options", b"DENY"),
           (b"content-security-policy", b"default-src 'self'; img-src 'self' data: blob:; media-src 'self' data: blob:;"
                                        b" style-src 'self'; script-src 'self'; frame-ancestors 'none'")]


class Guard:
    """ASGI middleware: keys, then the body's size; every refusal in the API's one error shape."""

    def __init__(self, app: Any, config: ServeConfig) -> None:
        self.app, self.config = app, config
        self.keys = KeyRing(config.keys_file) if config.keys_required else None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        if path.startswith("/v1") and path not in OPEN and self.keys is not None:
            auth = dict(scope.get("headers") or []).get(b"authorization", b"").decode("latin-1")
            if not self.keys.accepts(auth):
                return await _refuse(send, 401, "a valid API key is required: Authorization: Bearer gl-... "
                                     "(made by `genlab keys create-api`)", code="invalid_api_key")
        limit = self.config.max_upload + (1 << 16) if path in UPLOADS else self.config.max_body
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None:
            try:
                too_big = int(length) > limit
            except ValueError:
                return await _refuse(send, 400, "Content-Length is not a number")
            if too_big:
                return await _refuse(send, 413, f"the body is over {limit:,} bytes", code="body_too_large")
        if scope.get("method") not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, _with_headers(send))
        try:  # the whole body, counted as it arrives, within the time a client is given to send it
            data = await asyncio.wait_for(_read(receive, limit), timeout=self.config.body_timeout)
        except asyncio.TimeoutError:
            return await _refuse(send, 408, f"the body did not arrive within {self.config.body_timeout:g} s",
                                 code="body_timeout")
        if data is None:
            return await _refuse(send, 413, f"the body is over {limit:,} bytes", code="body_too_large")
        sent = False

        async def replay() -> dict:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": data, "more_body": False}
            return await receive()

        return await self.app(scope, replay, _with_headers(send))


async def _read(receive: Any, limit: int) -> bytes | None:
    """The request's body, or None once it is over ``limit`` bytes (or the client went away)."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks)
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        if size > limit:
            return None
        if not message.get("more_body"):
            return b"".join(chunks)


def _with_headers(send: Any) -> Any:
    async def wrapped(message: dict) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), *HEADERS]}
        await send(message)

    return wrapped


async def _refuse(send: Any, status: int, message: str, code: str | None = None) -> None:
    data = json.dumps(body(status, message, None, code)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()), *HEADERS]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


def install(app: FastAPI, config: ServeConfig) -> None:
    app.add_middleware(Guard, config=config)
    if config.cors:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(config.cors), allow_methods=["GET", "POST", "DELETE"],
                           allow_headers=["Authorization", "Content-Type"])
