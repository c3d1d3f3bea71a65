"""Clients made once per process, behind a getter that fails loudly.

Workers call ``init_stage`` from Celery's ``worker_init`` signal (their stage's S3 identity, the
workers' role in the run history), the operator's commands ``init_operator`` at start-up; code
receives ``get()``'s clients instead of building its own.
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
from shared.settings import S3Identity, Settings
from shared.stages import Stage


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


DEFAULT_S3_CONFIG = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=60)


def _connection(settings: Settings, identity: S3Identity, config: Config) -> dict:
    key_id, secret = settings.s3_credentials(identity)
    return {
        "endpoint_url": settings.s3_endpoint_url,
        "region_name": settings.s3_region,
        "aws_access_key_id": key_id,
        "aws_secret_access_key": secret,
        "config": config,
    }


def _aws(service: str, settings: Settings, identity: S3Identity, config: Config):
    return boto3.client(service, **_connection(settings, identity, config))


def make_s3(settings: Settings, identity: S3Identity, config: Config = DEFAULT_S3_CONFIG):
    """A boto3 S3 client as one of the lake's identities: a stage's (its zones), the operator's (every zone), the
    API's (read the serving files and the pointer) or the administrator's."""
    return _aws("s3", settings, identity, config)


def make_async_s3(settings: Settings, identity: S3Identity, config: Config = DEFAULT_S3_CONFIG):
    """An aioboto3 S3 client, to enter with ``async with``: ``make_s3``'s for an event loop."""
    import aioboto3  # only the API needs it; at module level it would cost every worker ~0.35 s at start

    return aioboto3.Session().client("s3", **_connection(settings, identity, config))


def make_iam(settings: Settings):
    """The local S3 server's IAM API, as its administrator (production grants through MinIO's admin API)."""
    return _aws("iam", settings, "admin", DEFAULT_S3_CONFIG)


_current: Clients | None = None


def init(settings: Settings, s3: S3Identity, metadata_dsn: str, celery: Celery | None = None) -> Clients:
    """The process's clients: the lake as ``s3``, the run history as the role ``metadata_dsn`` names."""
    global _current
    if _current is None:
        _current = Clients(
            settings=settings,
            lake=Lake(make_s3(settings, s3), settings.s3_bucket),
            history=History(metadata_dsn),
            redis=redis.Redis.from_url(settings.redis_url),
            celery=celery or create_celery(settings),
        )
    return _current


def init_stage(settings: Settings, stage: Stage, celery: Celery | None = None) -> Clients:
    """A worker's clients: its stage's S3 identity, the workers' role in the run history."""
    return init(settings, stage.value, settings.worker_metadata_dsn, celery)


def init_operator(settings: Settings) -> Clients:
    """The operator's commands' clients: every zone of the lake, the run history as its owner (an erasure request is
    added only there)."""
    return init(settings, "operator", settings.metadata_dsn)


def get() -> Clients:
    if _current is None:
        raise RuntimeError("clients are not initialised: call shared.clients.init_stage or init_operator at start")
    return _current


def close() -> None:
    global _current
    if _current is not None:
        _current.close()
        _current = None
