"""Typed API errors, rendered by one handler as ``{"error": ..., "detail": ...}``."""

from __future__ import annotations

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
        error = {405: "method_not_allowed", 404: "not_found"}.get(exc.status_code, "http_error")
        return JSONResponse({"error": error, "detail": str(exc.detail)}, exc.status_code, headers=headers)
