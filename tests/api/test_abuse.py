"""Abuse refused cheaply: a body over the limit refused before it is read or the token checked, a bounded cost
per request (queries per job listing, words per search, pings per readiness probe), and errors that say what
failed without the internals (hosts, keys, driver messages)."""

from __future__ import annotations

import asyncio
from datetime import date

import botocore.exceptions
import httpx
import pytest
import redis.exceptions

from services.api.app import create_app
from services.api.errors import public_error
from services.api.routes.health import DependencyProbe, failure_reason
from services.api.routes.jobs import jobs_of
from services.api.serving.index import MAX_QUERY_WORDS, TooManyWords, query_words
from shared.settings import Settings
from tests.pipeline.runs import failed_run


@pytest.mark.parametrize(
    ("recorded", "shown"),
    [
        (None, None),
        ("transform batch 3 failed: ValueError('bad row at s3://lake/raw/x')", "transform batch 3 failed: ValueError"),
        (
            "classify batch 1 failed: botocore.exceptions.ClientError('AccessDenied')",
            "classify batch 1 failed: ClientError",
        ),
        ("OperationalError('connection to server at \"db.internal\" failed')", "OperationalError"),
        ("OSError('host 10.0.0.7') [dead-lettered after 3 attempts]", "OSError (dead-lettered after 3 attempts)"),
        (" [dead-lettered after 3 attempts]", "(dead-lettered after 3 attempts)"),
        ("the source has no reviews to extract", "the source has no reviews to extract"),
        ("password=hunter2 host=db.internal", "error"),
    ],
)
def test_a_recorded_error_is_shown_as_where_and_the_exception_class(recorded, shown):
    assert public_error(recorded) == shown


def test_query_words_drop_repeats_and_words_another_starts_with_and_are_capped():
    assert query_words("Gui guitar GUITAR blue b") == ["blue", "guitar"]
    assert query_words("a " * 50) == ["a"]
    assert query_words("") == query_words(None) == []
    many = " ".join("abcdefghijklmnopqrstuvwxyz"[: MAX_QUERY_WORDS + 1])
    assert len(query_words(many[:-2])) == MAX_QUERY_WORDS
    with pytest.raises(TooManyWords):
        query_words(many)


class Dependency:
    """A Redis or S3 client that counts its pings and fails as told."""

    def __init__(self, error: Exception | None = None):
        self.pings = 0
        self.error = error

    async def ping(self, **_) -> None:
        self.pings += 1
        await asyncio.sleep(0.01)  # probes arriving meanwhile wait for this ping, not one of their own
        if self.error:
            raise self.error

    head_object = ping


def test_a_burst_of_readiness_probes_pings_each_dependency_once_per_period():
    now = [100.0]
    redis_client, s3 = Dependency(), Dependency()
    probe = DependencyProbe(redis_client, s3, "bucket", period_s=1.0, clock=lambda: now[0])

    async def probes() -> None:
        async def burst(n: int) -> list[dict]:
            return await asyncio.gather(*(probe.failures() for _ in range(n)))

        assert await burst(50) == [{}] * 50
        now[0] += 0.9
        await burst(10)
        assert (redis_client.pings, s3.pings) == (1, 1)
        now[0] += 0.2  # the period is over: the next probe pings again
        await burst(10)
        assert (redis_client.pings, s3.pings) == (2, 2)

    asyncio.run(probes())


def test_a_failed_dependency_is_named_with_the_kind_of_failure_never_its_message():
    refused = redis.exceptions.ConnectionError("Error 111 connecting to cache.internal:6379. Connection refused.")
    denied = botocore.exceptions.ClientError({"Error": {"Code": "403", "Message": "key AKIA123"}}, "HeadObject")
    probe = DependencyProbe(Dependency(refused), Dependency(denied), "bucket")
    assert asyncio.run(probe.failures()) == {"redis": "unreachable", "s3": "answered 403"}
    assert failure_reason(redis.exceptions.TimeoutError("cache.internal")) == "timed out"
    assert failure_reason(botocore.exceptions.EndpointConnectionError(endpoint_url="http://s3.internal")) == (
        "unreachable"
    )
    assert failure_reason(KeyError("secret")) == "failed: KeyError"


def test_a_missing_pointer_is_s3_answering_not_failing():
    # before the first publication: readiness says "no curated version", and S3 is fine
    missing = botocore.exceptions.ClientError({"Error": {"Code": "404", "Message": "Not Found"}}, "HeadObject")
    assert asyncio.run(DependencyProbe(Dependency(), Dependency(missing), "bucket").failures()) == {}


def test_a_body_over_the_limit_is_413_before_the_token_is_checked(client: httpx.Client, api_settings):
    limit = api_settings.api_max_body_bytes
    # without a token: the body is refused first, by its Content-Length
    declared = client.post("/jobs", content=b"{" + b" " * limit + b"}")
    assert declared.status_code == 413
    assert declared.json() == {"error": "payload_too_large", "detail": f"the request body is over {limit} bytes"}
    # a chunked body (no Content-Length) too
    chunked = client.post("/jobs", content=iter([b" " * limit, b" "]), headers={"Content-Type": "application/json"})
    assert chunked.status_code == 413 and chunked.json()["error"] == "payload_too_large"
    # and a body within the limit goes on to the token check, as before
    assert client.post("/jobs", json={"full": True}).status_code == 401


def test_a_chunked_body_is_read_only_until_it_passes_the_limit():
    app = create_app(Settings(api_max_body_bytes=65536))
    sent = []

    async def chunks():
        for _ in range(1000):  # 4 MB if it were all read
            sent.append(1)
            yield b" " * 4096

    async def post() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://api") as c:
            return await c.post("/jobs", content=chunks(), headers={"Content-Type": "application/json"})

    response = asyncio.run(post())
    assert response.status_code == 413 and response.json()["error"] == "payload_too_large"
    assert len(sent) == 65536 // 4096 + 1


def test_a_failed_jobs_errors_are_summaries_and_the_history_keeps_the_text(
    client: httpx.Client, api_history, api_settings
):
    run_id = failed_run(api_history, date(1997, 5, 1))
    auth = {"Authorization": f"Bearer {api_settings.api_token.get_secret_value()}"}
    job = client.get(f"/jobs/{run_id}", headers=auth).json()
    assert job["error"] == "transform batch 2 failed: ArrowInvalid"
    assert job["stages"]["transform"]["last_error"] == "ArrowInvalid"
    summary = api_history.stage_summary(run_id)["transform"]
    assert summary["last_error"] == "ArrowInvalid('Parquet magic bytes not found')"


def test_a_page_of_jobs_costs_three_queries_whatever_its_length(api_history, monkeypatch):
    for day in range(1, 6):
        failed_run(api_history, date(1996, 1, day))
    cursors = []
    opened = type(api_history)._cursor

    def counted(self):
        cursors.append(1)
        return opened(self)

    monkeypatch.setattr(type(api_history), "_cursor", counted)
    for limit in (1, 5):
        cursors.clear()
        jobs = jobs_of(api_history, api_history.list_runs(limit))
        assert len(jobs) == limit and len(cursors) == 3
        assert all(job.stages["transform"].dead == 1 for job in jobs)
    # the same summaries as one query per run gave
    runs = api_history.list_runs(5)
    assert api_history.stage_summaries([r["run_id"] for r in runs]) == {
        r["run_id"]: api_history.stage_summary(r["run_id"]) for r in runs
    }
