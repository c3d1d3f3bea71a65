"""The API service: ``create_app()`` builds it; uvicorn runs it with ``--factory``."""

from __future__ import annotations

from fastapi import FastAPI


def create_app() -> FastAPI:
    app = FastAPI(title="Review intelligence API")

    @app.get("/health")
    async def health() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "OK"}

    return app
