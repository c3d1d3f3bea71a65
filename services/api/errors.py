"""Typed API errors, rendered by one handler as ``{"error": ..., "detail": ...}``."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


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


def install_error_handler(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def _render(request: Request, exc: AppError) -> JSONResponse:
        return JSONResponse({"error": exc.error, "detail": exc.detail}, exc.status_code, headers=exc.headers)
