"""The API service: ``create_app()`` builds it; uvicorn runs it with ``--factory``.

The lifespan owns every client (S3 with the API's read-only credentials, Redis as
the API's own user, the run-history pool) and the task that keeps the served curated
version fresh, mapped from the host's cache folder (one per bucket).
The API has no MongoDB credentials and no broker: it asks for runs through the run
history (shared/run_requests.py), and its Redis user cannot enqueue (shared/redis_acl.py).
It also serves the storefront mockup (``/shop``), a static page that calls the API.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import redis.asyncio
from botocore.config import Config
from fastapi import FastAPI

from services.api.body_limit import BodyLimit
from services.api.errors import install_error_handler
from services.api.observability import ApiMetrics
from services.api.routes import health, jobs, metrics, products, reviews
from services.api.serving.cache import ServingCache
from services.api.serving.holder import IndexHolder
from services.api.shop import install_storefront
from shared.clients import make_async_s3
from shared.history import History
from shared.lake import CURATED_CHANNEL
from shared.logs import configure_logging
from shared.redis_acl import API_REDIS_OPTIONS
from shared.settings import API_SECRETS, Settings, get_settings

S3_CONFIG = Config(connect_timeout=5, read_timeout=60, retries={"max_attempts": 2})


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    async with make_async_s3(settings, "api", S3_CONFIG) as s3:
        app.state.s3 = s3
        app.state.redis = redis.asyncio.Redis.from_url(settings.api_redis_url, socket_timeout=5, **API_REDIS_OPTIONS)
        app.state.probe = health.DependencyProbe(app.state.redis, s3, settings.s3_bucket)
        app.state.history = History(settings.api_metadata_dsn)
        cache = ServingCache(settings.api_cache_path / settings.s3_bucket, settings.api_cache_versions)
        holder = app.state.holder = IndexHolder(s3, settings.s3_bucket, cache)
        await holder.refresh()  # serve at once when a version exists; not fatal when S3 is down
        tasks = [
            asyncio.create_task(holder.follow(app.state.redis, CURATED_CHANNEL, settings.api_reload_check_s)),
            asyncio.create_task(app.state.metrics.keep_gauges_fresh(holder)),
        ]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await app.state.redis.aclose()
            app.state.history.close()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    settings.require_secrets(API_SECRETS)  # each uvicorn worker, and a host that serves the factory itself
    configure_logging(settings, service=True)
    app = FastAPI(
        title="Review intelligence API",
        summary="The most useful reviews of each product, from the newest curated version.",
        version="1.0.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = ApiMetrics(settings.alert_api_window_s, settings.prometheus_multiproc_dir)
    app.add_middleware(BodyLimit, max_bytes=settings.api_max_body_bytes)  # inside the metrics: a 413 counts
    app.state.metrics.install(app)
    install_error_handler(app)
    for router in (health.router, reviews.router, products.router, jobs.router, metrics.router):
        app.include_router(router)
    install_storefront(app)
    return app
