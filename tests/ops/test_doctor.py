"""``reviews doctor``'s rules on the real servers: each one ok, and critical when its alert holds.

Each test gets a system of its own (a metadata database, a bucket, an API on its own port,
a Redis database): a rule about "the last run" must not see another test's runs.
"""

from __future__ import annotations

import math
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import psycopg2
import pytest
import redis
from psycopg2 import sql

from ops import doctor
from ops.stack.process import free_port
from ops.stack.s3_server import grant_lake
from shared import retention
from shared.clients import Clients, make_s3
from shared.curated.versions import rollback
from shared.history import History
from shared.history.runs import new_run_id
from shared.history.schema import init_metadata_db
from shared.lake import Lake
from shared.plan import Plan
from shared.settings import Settings
from shared.stages import Stage
from shared.worker_metrics import record_connection_error
from tests.api.conftest import ServerThread, wait_until_served
from tests.factories import publish_batches, scored_row


@dataclass(frozen=True)
class System:
    settings: Settings
    history: History
    lake: Lake
    redis: redis.Redis

    @property
    def api_url(self) -> str:
        return self.settings.api_base_url

    def publish(self, reviews: int, at: datetime | None = None) -> str:
        """A curated version of ``reviews`` distinct reviews, published ``at`` (default: now)."""
        at = at or datetime.now(UTC)
        run_id = new_run_id(at)
        rows = [scored_row(i, f"P{i % 7}", 0.5, text=f"review {i} {secrets.token_hex(40)}") for i in range(reviews)]
        publish_batches(self.lake, run_id, [rows], now=at)
        return run_id

    def finished_run(self, day: int, rows: int = 100, rejects: int = 0, error: str | None = None) -> str:
        """A run that transformed ``rows`` with ``rejects``, then succeeded (or failed with ``error``)."""
        run_id = self.history.create_run("cli", {}, date(2001, 1, day))
        self.history.start_run(run_id)
        self.history.finish_batch(run_id, Stage.TRANSFORM, 1, rows_in=rows, rows_out=rows - rejects, rejects=rejects)
        if error:
            self.history.fail_run(run_id, error)
        else:
            self.history.finish_run(run_id, "curated/x.parquet", rows - rejects)
        return run_id

    def timed_run(self, day: int, mode: str, seconds: float, running: bool = False) -> str:
        """A run of ``mode`` that took ``seconds`` (or has been running that long)."""
        run_id = self.history.create_run("cli", {}, date(2002, 1, day))
        self.history.start_run(run_id)
        self.history.set_plan(run_id, Plan(mode, "set by the test"))
        if not running:
            self.history.finish_run(run_id, "curated/x.parquet", 10)
        with psycopg2.connect(self.settings.metadata_dsn) as conn, conn.cursor() as cur:
            cur.execute(
                "UPDATE run SET started_at = coalesce(finished_at, now()) - make_interval(secs => %s) "
                "WHERE run_id = %s",
                (seconds, run_id),
            )
        conn.close()
        return run_id


@pytest.fixture
def system(servers: Settings) -> Iterator[System]:
    suffix = secrets.token_hex(3)
    settings = servers.model_copy(
        update={
            "s3_bucket": f"doctor-{suffix}",
            "metadata_db": f"doctor_{suffix}",
            "redis_db": 2,
            "api_port": free_port(),
            "api_reload_check_s": 1.0,
        }
    )
    grant_lake(settings)
    init_metadata_db(settings)
    history = History(settings.metadata_dsn)
    client = redis.Redis.from_url(settings.redis_url)
    # the doctor's memory, and the lake's last measure: each test starts afresh
    client.delete(doctor.HEALTH_CHECKS_KEY, doctor.LATENCY_KEY, retention.MEASURE_KEY)
    try:
        yield System(settings, history, Lake(make_s3(settings, "operator"), settings.s3_bucket), client)
    finally:
        history.close()
        client.close()
        admin = psycopg2.connect(servers.postgres_admin_dsn)
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(settings.metadata_db)))
        admin.close()


@pytest.fixture
def http(system: System) -> Iterator[httpx.Client]:
    """A client of the system's API (the rules take full URLs, so it serves them too)."""
    with httpx.Client(base_url=system.api_url, timeout=10) as client:
        yield client


def test_api_health_is_critical_unless_the_api_answers_ready(system, http):
    with ServerThread(system.settings):
        not_ready = doctor.api_health(http, system.api_url)
        version = system.publish(50)
        wait_until_served(http, version)
        ready = doctor.api_health(http, system.api_url)
    gone = doctor.api_health(http, system.api_url)
    assert not_ready.severity == "critical" and "503" in not_ready.value and "no curated version" in not_ready.value
    assert ready.severity == "ok" and version in ready.value
    assert gone.severity == "critical" and "unreachable" in gone.value


def test_api_5xx_rate_counts_the_storefronts_responses_of_the_window(system, http):
    with ServerThread(system.settings):
        for _ in range(3):  # readiness probes answer 503 before a version is served: not counted
            http.get(f"{system.api_url}/health/ready")
        quiet = doctor.api_5xx_rate(doctor.Scrape(http, system.api_url), 0.10, 600)
        for _ in range(2):
            assert http.get(f"{system.api_url}/products").status_code == 503
        failing = doctor.api_5xx_rate(doctor.Scrape(http, system.api_url), 0.10, 600)
        wait_until_served(http, system.publish(50))
        for _ in range(20):
            assert http.get(f"{system.api_url}/products").status_code == 200
        recovered = doctor.api_5xx_rate(doctor.Scrape(http, system.api_url), 0.10, 600)
    assert quiet.severity == "ok" and "no requests" in quiet.value
    assert failing.severity == "critical" and failing.value == "100.0% (2 of 2)"
    assert recovered.severity == "ok" and recovered.value == "9.1% (2 of 22)"


def test_one_check_scrapes_the_api_once_for_every_rule_that_reads_its_metrics(system):
    paths: list[str] = []
    record = lambda request: paths.append(request.url.path)  # noqa: E731
    # the doctor sends no task, so its clients need no Celery app
    c = Clients(system.settings, system.lake, system.history, system.redis, celery=None)
    with (
        ServerThread(system.settings),
        httpx.Client(base_url=system.api_url, timeout=10, event_hooks={"request": [record]}) as http,
    ):
        wait_until_served(http, system.publish(50))
        paths.clear()
        rules = {r.name: r for r in doctor.evaluate(system.settings, c, http)}
    assert paths.count("/metrics") == 1
    assert rules["api_5xx_rate"].severity == rules["api_latency"].severity == "ok"


def test_last_run_and_reject_share_judge_the_last_finished_run(system):
    # given no run yet: nothing to judge
    assert doctor.last_run(system.history).severity == "warning"
    assert doctor.reject_share(system.history, 0.2).severity == "ok"
    # a run that succeeded with few rejects
    first = system.finished_run(1, rows=100, rejects=5)
    assert doctor.last_run(system.history).severity == "ok"
    assert doctor.reject_share(system.history, 0.2).value == f"5.0% (5 of 100, run {first})"
    # then one that failed
    system.finished_run(2, error="transform batch 1 failed: boom")
    failed = doctor.last_run(system.history)
    assert failed.severity == "critical" and "failed" in failed.value and "boom" in failed.value
    # then one that succeeded but rejected a third of its rows
    system.finished_run(3, rows=90, rejects=30)
    assert doctor.last_run(system.history).severity == "ok"
    rejects = doctor.reject_share(system.history, 0.2)
    assert rejects.severity == "critical" and rejects.value.startswith("33.3% (30 of 90")


def test_curated_age_and_size_drop_judge_the_served_version(system):
    now = datetime.now(UTC)
    assert doctor.curated_age(system.lake, 24).severity == "critical"  # nothing published
    # a version of yesterday's yesterday
    system.publish(400, at=now - timedelta(hours=30))
    stale = doctor.curated_age(system.lake, 24)
    assert stale.severity == "critical" and stale.value.startswith("30.0 h")
    assert doctor.curated_size_drop(system.lake, 0.5).severity == "ok"  # nothing to compare with
    # a fresh one of the same size
    fresh = system.publish(400, at=now - timedelta(minutes=2))
    assert doctor.curated_age(system.lake, 24).severity == "ok"
    assert doctor.curated_size_drop(system.lake, 0.5).severity == "ok"
    # one that lost most of its input
    system.publish(20)
    dropped = doctor.curated_size_drop(system.lake, 0.5)
    assert dropped.severity == "critical" and dropped.value.startswith("-")
    # rolled back: the version served is judged against the one before it
    rollback(system.lake, to=fresh)
    assert doctor.curated_size_drop(system.lake, 0.5).severity == "ok"


def test_lake_retention_warns_when_the_expiry_left_a_run_past_its_retention(system):
    assert doctor.lake_retention(system.redis, 30).severity == "ok"  # not measured yet: no daily expiry so far
    now = datetime.now(UTC)

    def measured_oldest(days_ago: float) -> doctor.Rule:
        oldest = (now - timedelta(days=days_ago)).timestamp()
        retention.record(system.redis, retention.LakeMeasure({"raw": (1, 10)}, oldest, now.timestamp()))
        return doctor.lake_retention(system.redis, 30, now=now)

    assert measured_oldest(31).severity == "ok"  # one day between two daily expiries
    rule = measured_oldest(33)
    assert rule.severity == "warning" and "33.0 days ago" in rule.value and "32 days" in rule.threshold


def test_connection_errors_are_critical_when_repeated_within_the_window(system):
    now = datetime(2001, 9, 9, tzinfo=UTC).timestamp()  # a time of this test's own in the shared Redis
    for _ in range(5):  # long ago: outside the window
        record_connection_error(system.redis, "s3", now=now - 7200)
    for _ in range(4):
        record_connection_error(system.redis, "mongodb", now=now - 120)
    below = doctor.connection_errors(system.redis, 5, 3600, now=now)
    record_connection_error(system.redis, "mongodb", now=now)
    repeated = doctor.connection_errors(system.redis, 5, 3600, now=now)
    assert below.severity == "ok" and below.value == "s3 0, mongodb 4 in the last 3600 s"
    assert repeated.severity == "critical" and "mongodb 5" in repeated.value


def test_reviews_doctor_prints_every_rule_and_exits_1_on_a_critical_one(system, http):
    def reviews_doctor() -> subprocess.CompletedProcess:
        exe = Path(sys.executable).with_name("reviews")
        return subprocess.run(
            [str(exe), "doctor"], env=system.settings.child_env(), capture_output=True, text=True, timeout=60
        )

    # given a healthy system: a fresh version served, a successful run, no errors
    with ServerThread(system.settings):
        wait_until_served(http, system.publish(100))
        system.finished_run(1, rows=100, rejects=2)
        healthy = reviews_doctor()
        system.finished_run(2, error="classify batch 3 failed: boom")
        unhealthy = reviews_doctor()
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    rules = (
        "api_health",
        "api_liveness",
        "api_5xx_rate",
        "api_latency",
        "last_run",
        "run_duration",
        "retries_exhausted",
        "curated_age",
        "curated_size_drop",
        "curated_size_growth",
        "reject_share",
        "lake_retention",
        "connection_errors",
    )
    for rule in rules:
        assert f"OK        {rule}" in healthy.stdout
    assert "13 rules: 0 critical, 0 warning" in healthy.stdout
    assert unhealthy.returncode == 1
    assert "CRITICAL  last_run" in unhealthy.stdout and "boom" in unhealthy.stdout


def test_warnings_alone_exit_0(system, http):
    # given a healthy system whose newest curated file tripled: a warning, nothing critical
    with ServerThread(system.settings):
        system.publish(100, at=datetime.now(UTC) - timedelta(minutes=5))
        wait_until_served(http, system.publish(300))
        system.finished_run(1)
        exe = Path(sys.executable).with_name("reviews")
        result = subprocess.run(
            [str(exe), "doctor"], env=system.settings.child_env(), capture_output=True, text=True, timeout=60
        )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING   curated_size_growth" in result.stdout and "13 rules: 0 critical, 1 warning" in result.stdout


def test_curated_size_growth_warns_when_the_served_file_jumps(system):
    now = datetime.now(UTC)
    system.publish(200, at=now - timedelta(minutes=10))
    assert doctor.curated_size_growth(system.lake, 0.5).severity == "ok"  # nothing to compare with
    system.publish(220, at=now - timedelta(minutes=5))
    assert doctor.curated_size_growth(system.lake, 0.5).severity == "ok"  # a day's new reviews
    system.publish(800, at=now)
    grown = doctor.curated_size_growth(system.lake, 0.5)
    assert grown.severity == "warning" and grown.value.startswith("+")
    assert doctor.curated_size_drop(system.lake, 0.5).severity == "ok"


def test_run_duration_warns_when_a_run_is_slower_than_the_mean_of_its_mode(system):
    assert doctor.run_duration(system.history, 2, 10).value == "no run to judge yet"
    for day in (1, 2, 3):
        system.timed_run(day, "full", 100)
    for day in (4, 5):
        system.timed_run(day, "incremental", 10)
    # an incremental run a little slower than the incremental ones: fine
    system.timed_run(6, "incremental", 15)
    fine = doctor.run_duration(system.history, 2, 10)
    assert fine.severity == "ok" and "1.5 x the mean 10 s of 2 runs" in fine.value
    # three times the incremental mean (far below a full run's time): a warning all the same
    slow = system.timed_run(7, "incremental", 35)
    warned = doctor.run_duration(system.history, 2, 10)
    assert warned.severity == "warning" and slow in warned.value and "3.0 x the mean 12 s of 3 runs" in warned.value
    # a full run still running after 5 full runs' time: judged before it ends
    running = system.timed_run(8, "full", 500, running=True)
    now = doctor.run_duration(system.history, 2, 10)
    assert now.severity == "warning" and running in now.value and "running" in now.value
    assert "of 3 runs" in now.value


def test_retries_exhausted_warns_on_batches_that_gave_up_after_their_retries(system):
    # a permanent error on the first try: nothing was retried, the failed run is last_run's business
    first = system.history.create_run("cli", {}, date(2003, 1, 1))
    system.history.kill_batch(first, Stage.TRANSFORM, 1, "ValueError('bad data')")
    assert doctor.retries_exhausted(system.history, 24).severity == "ok"
    # an S3 outage that outlasted the transform's retries
    second = system.history.create_run("cli", {}, date(2003, 1, 2))
    for _ in range(3):
        system.history.retry_batch(second, Stage.TRANSFORM, 4, "EndpointConnectionError('s3')")
    system.history.kill_batch(second, Stage.TRANSFORM, 4, "EndpointConnectionError('s3')")
    system.history.fail_run(second, "transform batch 4 failed")
    rule = doctor.retries_exhausted(system.history, 24)
    assert rule.severity == "warning" and f"run {second} (failed) transform batch 4 after 3 retries" in rule.value
    assert "reviews retry" in rule.value


def test_api_liveness_warns_after_several_failed_checks_in_a_row(system, http):
    def check() -> doctor.Rule:
        return doctor.api_liveness(http, system.api_url, system.redis, failures=3)

    with ServerThread(system.settings):
        answering = check()
    down = [check() for _ in range(3)]
    with ServerThread(system.settings):
        back = check()
    assert answering.severity == "ok" and answering.value.startswith("answering")
    assert [r.severity for r in down] == ["ok", "ok", "warning"]
    assert "failing, unreachable" in down[-1].value and down[-1].value.endswith("failed, failed, failed")
    assert back.severity == "ok" and back.value.endswith("ok, failed, failed")


def test_api_latency_is_read_from_the_apis_histogram_since_the_previous_check(system, http):
    with ServerThread(system.settings):
        wait_until_served(http, system.publish(50))
        for _ in range(20):
            http.get("/products")
        first = doctor.api_latency(doctor.Scrape(http, system.api_url), system.redis, max_s=5.0, quantile=0.99)
        quiet = doctor.api_latency(doctor.Scrape(http, system.api_url), system.redis, max_s=5.0, quantile=0.99)
        for _ in range(10):
            http.get("/products")
        slow = doctor.api_latency(doctor.Scrape(http, system.api_url), system.redis, max_s=1e-6, quantile=0.99)
    assert first.severity == "ok" and "over 20 requests since the API started" in first.value  # probes left out
    assert quiet.severity == "ok" and quiet.value.startswith("no storefront requests since the check at")
    assert slow.severity == "warning" and "over 10 requests since the check at" in slow.value


def test_histogram_quantile_interpolates_within_the_bucket_as_prometheus_does():
    buckets = {0.1: 50.0, 0.5: 90.0, 1.0: 100.0, math.inf: 100.0}
    assert doctor.histogram_quantile(0.5, buckets) == pytest.approx(0.1)
    assert doctor.histogram_quantile(0.7, buckets) == pytest.approx(0.3)  # 20 of the 40 in (0.1, 0.5]
    assert doctor.histogram_quantile(0.99, {**buckets, math.inf: 200.0}) == 1.0  # beyond the last bound
