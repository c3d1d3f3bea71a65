from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from services.api.deps import AppSettingsDep, HolderDep
from services.api.models import Health, Readiness
from shared.lake import LATEST_KEY

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health)
async def health() -> Health:
    """Liveness: the process answers."""
    return Health()


@router.get("/health/ready", response_model=Readiness, responses={503: {"model": Readiness}})
async def ready(request: Request, holder: HolderDep, settings: AppSettingsDep) -> JSONResponse:
    """Readiness: a curated version is served, and Redis and S3 answer."""
    reasons: list[str] = []
    redis_ok = s3_ok = True
    try:
        await request.app.state.redis.ping()
    except Exception as exc:
        redis_ok = False
        reasons.append(f"redis: {exc!r}")
    try:
        await request.app.state.s3.head_object(Bucket=settings.s3_bucket, Key=LATEST_KEY)
    except Exception as exc:
        s3_ok = False
        reasons.append(f"s3: {exc!r}")
    index = holder.index
    if index is None:
        reasons.append("no curated version loaded yet")
    if holder.last_error:
        reasons.append(holder.last_error)
    body = Readiness(
        ready=index is not None and redis_ok and s3_ok,
        version=index.version.version if index else None,
        published_at=index.version.published_at if index else None,
        age_seconds=round(index.age_seconds(), 1) if index else None,
        rows=index.rows if index else None,
        products=index.product_count if index else None,
        redis=redis_ok,
        s3=s3_ok,
        reasons=reasons,
    )
    return JSONResponse(body.model_dump(), status_code=200 if body.ready else 503)
