"""The upload size limit, enforced before a byte beyond it is stored.

A plain ASGI middleware: a declared ``Content-Length`` above the limit is answered with 413 at once; a body sent
without one (chunked) is counted as it streams in and the request is stopped with 413 as soon as it passes the
limit, before the multipart parser spools the rest to disk.
"""

from __future__ import annotations

import json
from typing import Any

Scope = dict[str, Any]


class UploadTooLarge(BaseException):
    """Raised inside ``receive`` when a streamed body passes the limit.

    A BaseException so that FastAPI's body parser (which turns any Exception into a 400) lets it through to
    this middleware, which answers 413.
    """


class BodySizeLimit:
    """Answer 413 to any request whose body is longer than ``limit`` bytes."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def _reply_413(self, send: Any) -> None:
        body = json.dumps({"detail": f"the upload is larger than the {self.limit / 2**20:g} MiB this server accepts",
                           "limit_bytes": self.limit}).encode("utf-8")
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"connection", b"close"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._reply_413(send)
            return
        received = 0
        started = False

        async def counting_receive() -> Any:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise UploadTooLarge()
            return message

        async def tracking_send(message: Any) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except UploadTooLarge:
            if not started:
                await self._reply_413(send)
