"""Typed API errors, rendered by one handler as ``{"error": ..., "detail": ...}``."""

from __future__ import annotations

import re

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException


class AppError(Exception):
    status_code = 500
    error = "internal_error"
    headers: dict[str, str] | None = None

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


class NotFound(AppError):
    status_code = 404
    error = "not_found"


class NotReady(AppError):
    status_code = 503
    error = "not_ready"


class Unauthorized(AppError):
    status_code = 401
    error = "unauthorized"
    headers = {"WWW-Authenticate": "Bearer"}


class Forbidden(AppError):
    status_code = 403
    error = "forbidden"


class Conflict(AppError):
    status_code = 409
    error = "conflict"


# The shapes the workers write (shared/tasks.py, History.begin_batch): "<stage> batch <n> failed: <repr>",
# a bare repr, and the dead-letter mark appended to either.
_WHERE = re.compile(r"(?P<where>\w+ batch \d+ failed): (?P<rest>.*)", re.DOTALL)
_DEAD = re.compile(r"\s*\[(?P<dead>dead-lettered after \d+ attempts)\]\s*$")
_EXCEPTION = re.compile(r"(?P<cls>[A-Za-z_][\w.]*)\(")
_PLAIN = re.compile(r"[A-Za-z0-9 ]+")


def public_error(text: str | None) -> str | None:
    """A run's or batch's recorded error as API clients see it: where it failed and the exception's class
    ("transform batch 3 failed: ValueError"), never its message, which may name hosts, keys or data. The full
    text stays in the run history, for the log and ``reviews runs``. A plain sentence of words (the pipeline's
    own, "the source has no reviews to extract") is kept; any other text becomes "error"."""
    if text is None:
        return None
    where = _WHERE.match(text)
    prefix, rest = (f"{where['where']}: ", where["rest"]) if where else ("", text)
    dead = _DEAD.search(rest)
    rest = rest[: dead.start()].strip() if dead else rest.strip()
    exception = _EXCEPTION.match(rest)
    if exception:
        what = exception["cls"].rsplit(".", 1)[-1]
    elif _PLAIN.fullmatch(rest) or (not rest and dead):
        what = rest
    else:
        what = "error"
    summary = f"{prefix}{what}" + (f" ({dead['dead']})" if dead else "")
    return summary.strip()


def _allowed_methods(request: Request) -> str:
    # Starlette answers 405 with the methods of the first route whose path matched;
    # GET /jobs and POST /jobs are two routes, so gather the methods of all of them.
    methods = {
        method
        for route in request.app.routes
        if isinstance(route, APIRoute) and route.path_regex.match(request.url.path)
        for method in route.methods
    }
    return ", ".join(sorted(methods))


def install_error_handler(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def _render(request: Request, exc: AppError) -> JSONResponse:
        return JSONResponse({"error": exc.error, "detail": exc.detail}, exc.status_code, headers=exc.headers)

    @app.exception_handler(HTTPException)
    async def _render_http(request: Request, exc: HTTPException) -> JSONResponse:
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = _allowed_methods(request)
        error = {405: "method_not_allowed", 404: "not_found", 413: "payload_too_large"}.get(
            exc.status_code, "http_error"
        )
        return JSONResponse({"error": error, "detail": str(exc.detail)}, exc.status_code, headers=headers)
