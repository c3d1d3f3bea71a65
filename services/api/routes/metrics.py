from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

router = APIRouter(tags=["metrics"])


@router.get("/metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    """Prometheus text format."""
    m = request.app.state.metrics
    index = request.app.state.holder.index
    if index is not None:
        m.curated_age.set(index.age_seconds())
        m.rows_served.set(index.rows)
    m.loads.set(request.app.state.holder.loads)
    return Response(generate_latest(m.registry), media_type=CONTENT_TYPE_LATEST)
