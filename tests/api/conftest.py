"""A real uvicorn server running the API against the session's real Redis, PostgreSQL and S3.

It gets a bucket, a Redis database and a metadata database of its own, so that jobs it
enqueues are never picked up by the pipeline tests' workers.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx
import pytest
import redis
import uvicorn

from ops.stack.process import free_port
from ops.stack.s3_server import grant_lake
from services.api.app import create_app
from shared.clients import make_s3
from shared.curated.versions import announce
from shared.history import History
from shared.history.schema import init_metadata_db
from shared.lake import Lake
from shared.settings import Settings
from tests.factories import publish_batches


class ServerThread:
    def __init__(self, settings: Settings):
        config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=settings.api_port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://127.0.0.1:{settings.api_port}"

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


class Publisher:
    """Publishes curated versions the way the publish stage does: real code, real S3, real Redis."""

    def __init__(self, settings: Settings):
        self.lake = Lake(make_s3(settings, "operator"), settings.s3_bucket)
        self.redis = redis.Redis.from_url(settings.redis_url)

    def publish(self, run_id: str, batches: list[list[dict]], **kwargs):
        version = publish_batches(self.lake, run_id, batches, **kwargs).version
        announce(self.redis, version)
        return version


@pytest.fixture(scope="session")
def api_settings(servers: Settings) -> Settings:
    settings = servers.model_copy(
        update={
            "s3_bucket": "api-test-lake",
            "redis_db": 1,
            "metadata_db": "api_test_metadata",
            "api_port": free_port(),
            "api_reload_check_s": 1.0,
        }
    )
    grant_lake(settings)  # the pipeline writes it, the API reads its serving files and pointer
    init_metadata_db(settings)
    return settings


@pytest.fixture(scope="session")
def api(api_settings: Settings) -> Iterator[ServerThread]:
    with ServerThread(api_settings) as server:
        yield server


# Module-scoped, so that a module serving the API its own way (its own api_settings, api_url) publishes to it.
@pytest.fixture(scope="module")
def publisher(api_settings: Settings) -> Publisher:
    return Publisher(api_settings)


@pytest.fixture(scope="module")
def api_history(api_settings: Settings) -> Iterator[History]:
    """The run history the API reads, for a test to write runs into."""
    history = History(api_settings.metadata_dsn)
    yield history
    history.close()


@pytest.fixture(scope="session")
def api_url(api: ServerThread) -> str:
    return api.url


@pytest.fixture
def client(api_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api_url, timeout=10) as c:
        yield c


def wait_until_served(client: httpx.Client, version: str, timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if client.get("/health/ready").json().get("version") == version:
            return
        time.sleep(0.1)
    raise AssertionError(f"version {version} not served within {timeout_s}s")


@dataclass
class Hammered:
    seen: Counter = field(default_factory=Counter)  # answers per version named
    problems: list[str] = field(default_factory=list)


@contextmanager
def hammering(url: str, expected: dict[str, str], keep_alive: Sequence[bool] = (True,) * 8) -> Iterator[Hammered]:
    """One client a thread asks for P1's top reviews until the block ends. Every answer must be a 200 whose
    reviews all carry the tag ``expected`` gives the version it names; a refused or reset connection is a
    request lost. A client without keep-alive opens a connection a request (and so meets every worker)."""
    result = Hammered()
    stop = threading.Event()

    def hammer(keep: bool) -> None:
        limits = httpx.Limits(max_keepalive_connections=int(keep))
        with httpx.Client(base_url=url, timeout=10, limits=limits) as c:
            while not stop.is_set():
                try:
                    response = c.get("/reviews/P1/top", params={"limit": 50})
                except httpx.HTTPError as exc:
                    result.problems.append(repr(exc))
                    continue
                if response.status_code != 200:
                    result.problems.append(f"status {response.status_code}")
                    continue
                body = response.json()
                tags = {r["title"].split("-")[0] for r in body["reviews"]}
                if tags != {expected.get(body["version"])}:
                    result.problems.append(f"version {body['version']} served reviews of {tags}")
                result.seen[body["version"]] += 1

    threads = [threading.Thread(target=hammer, args=(keep,)) for keep in keep_alive]
    for t in threads:
        t.start()
    try:
        yield result
    finally:
        stop.set()
        for t in threads:
            t.join()


@pytest.fixture
def auth(api_settings: Settings) -> dict[str, str]:
    """The operator's token, which every run-history route asks for."""
    return {"Authorization": f"Bearer {api_settings.api_token.get_secret_value()}"}
