from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

router = APIRouter(tags=["metrics"])


@router.get("/metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    """Prometheus text format: every worker process's metrics together."""
    exposition = request.app.state.metrics.exposition(request.app.state.holder)
    return Response(exposition, media_type=CONTENT_TYPE_LATEST)
