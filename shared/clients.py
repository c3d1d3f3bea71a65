"""Clients made once per process, behind a getter that fails loudly.

Workers call ``init`` from Celery's ``worker_init`` signal, the CLI at start-up;
code receives ``get()``'s clients instead of building its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import boto3
import redis
from botocore.config import Config
from celery import Celery

from shared.celery_app import create_celery
from shared.history import History
from shared.lake import Lake
from shared.settings import Settings


@dataclass(frozen=True)
class Clients:
    settings: Settings
    lake: Lake
    history: History
    redis: redis.Redis
    celery: Celery  # for sending tasks: the worker's own app, or one made from these settings

    def close(self) -> None:
        self.history.close()
        self.redis.close()


def make_s3(settings: Settings, *, api: bool = False):
    """A boto3 S3 client with the pipeline's credentials, or the API's read-only ones."""
    key_id = settings.api_s3_access_key_id if api else settings.s3_access_key_id
    secret = settings.api_s3_secret_access_key if api else settings.s3_secret_access_key
    return boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint_url,
        region_name=settings.s3_region,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret.get_secret_value(),
        config=Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=60),
    )


_current: Clients | None = None


def init(settings: Settings, celery: Celery | None = None) -> Clients:
    global _current
    if _current is None:
        _current = Clients(
            settings=settings,
            lake=Lake(make_s3(settings), settings.s3_bucket),
            history=History(settings.metadata_dsn),
            redis=redis.Redis.from_url(settings.redis_url),
            celery=celery or create_celery(settings),
        )
    return _current


def get() -> Clients:
    if _current is None:
        raise RuntimeError("clients are not initialised: call shared.clients.init(settings) at process start")
    return _current


def close() -> None:
    global _current
    if _current is not None:
        _current.close()
        _current = None
