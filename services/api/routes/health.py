from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import botocore.exceptions
import redis.exceptions
import structlog
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from services.api.deps import HolderDep
from services.api.models import Health, Readiness
from services.api.serving.holder import IndexHolder
from shared.lake import LATEST_KEY

router = APIRouter(tags=["health"])
log = structlog.get_logger()

# A burst of readiness probes (every orchestrator replica, every load balancer) pings Redis and S3 once
# per this period; a dependency that fails is reported at most this late.
DEPENDENCY_CHECK_S = 1.0


def failure_reason(exc: BaseException) -> str:
    """What a client may read of a dependency's failure: its kind, never the message (hosts, keys)."""
    if isinstance(exc, TimeoutError | redis.exceptions.TimeoutError | botocore.exceptions.ReadTimeoutError):
        return "timed out"
    if isinstance(exc, OSError | redis.exceptions.ConnectionError | botocore.exceptions.ConnectionError):
        return "unreachable"
    if isinstance(exc, botocore.exceptions.ClientError):
        return f"answered {exc.response.get('Error', {}).get('Code', 'an error')}"
    return f"failed: {type(exc).__name__}"


class DependencyProbe:
    """Redis and S3 pinged at most once per ``period_s``; concurrent probes share one ping."""

    def __init__(
        self,
        redis_client,
        s3,
        bucket: str,
        period_s: float = DEPENDENCY_CHECK_S,
        clock: Callable[[], float] | None = None,
    ):
        self._redis, self._s3, self._bucket = redis_client, s3, bucket
        self._period_s = period_s
        self._clock = clock or time.monotonic
        self._lock = asyncio.Lock()
        self._checked_at: float | None = None
        self._failures: dict[str, str] = {}

    async def _ping(self, name: str, ping) -> None:
        try:
            await ping()
        except Exception as exc:  # noqa: BLE001 - whatever it is, the dependency is not ready
            self._failures[name] = failure_reason(exc)
            log.warning("readiness_dependency_failed", dependency=name, error=repr(exc))

    async def failures(self) -> dict[str, str]:
        """The failed dependencies by name, with a short reason: empty when both answer."""
        async with self._lock:
            now = self._clock()
            if self._checked_at is None or now - self._checked_at >= self._period_s:
                self._failures = {}
                await self._ping("redis", self._redis.ping)
                await self._ping("s3", self._head_pointer)
                self._checked_at = self._clock()
            return dict(self._failures)

    async def _head_pointer(self) -> None:
        try:
            await self._s3.head_object(Bucket=self._bucket, Key=LATEST_KEY)
        except botocore.exceptions.ClientError as exc:
            # No pointer yet: S3 answered. Readiness says "no curated version" for that, and a 404 held for a
            # period would otherwise outlive the first publication.
            if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey"):
                raise


@router.get("/health", response_model=Health)
async def health() -> Health:
    """Liveness: the process answers."""
    return Health()


async def readiness(request: Request, holder: IndexHolder) -> Readiness:
    """The served version and the dependencies' state: readiness's body, and the console's health."""
    failures = await request.app.state.probe.failures()
    reasons = [f"{name}: {reason}" for name, reason in failures.items()]
    index = holder.index
    if index is None:
        reasons.append("no curated version loaded yet")
    if holder.last_error:
        reasons.append(holder.last_error)
    return Readiness(
        ready=index is not None and not failures,
        version=index.version.version if index else None,
        published_at=index.version.published_at if index else None,
        age_seconds=round(index.age_seconds(), 1) if index else None,
        rows=index.rows if index else None,
        products=index.product_count if index else None,
        redis="redis" not in failures,
        s3="s3" not in failures,
        reasons=reasons,
    )


@router.get("/health/ready", response_model=Readiness, responses={503: {"model": Readiness}})
async def ready(request: Request, holder: HolderDep) -> JSONResponse:
    """Readiness: a curated version is served, and Redis and S3 answer (checked at most once a second)."""
    body = await readiness(request, holder)
    return JSONResponse(body.model_dump(), status_code=200 if body.ready else 503)
