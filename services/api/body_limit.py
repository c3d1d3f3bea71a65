"""The request body limit (``API_MAX_BODY_BYTES``), enforced before anything parses a body or checks a token.

A body whose Content-Length is over the limit is refused at once, unread; a chunked body is read until it
passes the limit, then refused. Either way the client gets a 413 in the API's usual error body.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyLimit:
    """A plain ASGI middleware (as services/api/observability.py's, for the same reason: no task group)."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes
        self.detail = f"the request body is over {max_bytes} bytes"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            response = JSONResponse({"error": "payload_too_large", "detail": self.detail}, 413)
            await response(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # An HTTPException: FastAPI passes it through its body parsing (any other exception
                    # becomes a 400 there), and the app's handler renders it (services/api/errors.py).
                    raise HTTPException(413, self.detail)
            return message

        await self.app(scope, limited, send)
