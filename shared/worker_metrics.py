"""What the workers measure: Prometheus metrics, and connection errors counted in Redis.

Each worker process serves its own metrics over HTTP on ``METRICS_PORT``: one worker
per container in production, a port per worker in the local stack. Workers run a
thread pool, not prefork, so one process holds all of a worker's counters and
prometheus_client needs no multiprocess mode.

Connection errors to S3 and MongoDB are counted a second time, in Redis per minute:
``reviews doctor`` needs them summed over every worker and a window of time, which
no single worker's counters give (and a restarted worker's start from zero).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence

import botocore.exceptions
import pymongo.errors
import redis
import structlog
from prometheus_client import Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from shared.settings import Settings

log = structlog.get_logger()

# Batch tasks take from well under a second (extract.start) to many minutes (classify, large batches).
TASK_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)

TASK_SECONDS = Histogram(
    "pipeline_task_seconds",
    "Task durations by stage, task and outcome (success, retry, failure)",
    ["stage", "task", "outcome"],
    buckets=TASK_BUCKETS,
)
ROWS_IN = Counter("pipeline_rows_in", "Rows read by the batches a stage completed", ["stage"])
ROWS_OUT = Counter("pipeline_rows_out", "Rows written by the batches a stage completed", ["stage"])
REJECTS = Counter("pipeline_rejects", "Rows rejected by validation", ["stage"])
RETRIES = Counter("pipeline_retries", "Retries scheduled after a transient error", ["stage"])
CONNECTION_ERRORS = Counter("pipeline_connection_errors", "Failures to reach S3 or MongoDB", ["target"])

CONNECTION_TARGETS = ("s3", "mongodb")
# Per-minute counts live this long: the longest window the doctor may sum (ALERT_CONNECTION_WINDOW_S).
CONNECTION_ERRORS_KEPT_S = 24 * 3600 + 60


def serve(settings: Settings) -> None:
    """Serve this process's metrics over HTTP, in a daemon thread; METRICS_PORT=0: not at all."""
    if settings.metrics_port:
        start_http_server(settings.metrics_port, addr=settings.metrics_host)
        log.info("metrics_serving", host=settings.metrics_host, port=settings.metrics_port)


def record_batch(stage: str, rows_in: int, rows_out: int, rejects: int) -> None:
    ROWS_IN.labels(stage).inc(rows_in)
    ROWS_OUT.labels(stage).inc(rows_out)
    REJECTS.labels(stage).inc(rejects)


Reading = float | dict[str | tuple[str, ...], float] | None


class ScrapedGauge(Collector):
    """A gauge whose value is read at each scrape (from the run history, say), never stale.

    ``read`` returns the value; with ``labels``, a value per label value (a tuple of them for several
    labels); None: no sample (nothing to measure yet)."""

    def __init__(self, name: str, documentation: str, read: Callable[[], Reading], labels: Sequence[str] = ()):
        self.name = name
        self._documentation = documentation
        self._read = read
        self._labels = tuple(labels)

    def _family(self) -> GaugeMetricFamily:
        return GaugeMetricFamily(self.name, self._documentation, labels=self._labels)

    def describe(self) -> Iterator[Metric]:  # registering must not call ``read`` (the database may be down)
        yield self._family()

    def collect(self) -> Iterator[Metric]:
        try:
            value = self._read()
        except Exception as exc:  # the scrape still returns every other metric; the gap itself alerts
            log.warning("metric_unavailable", metric=self.name, error=repr(exc))
            return
        family = self._family()
        if isinstance(value, dict):
            for key, v in value.items():
                family.add_metric([key] if isinstance(key, str) else list(key), v)
        elif value is not None:
            family.add_metric([], value)
        yield family


def cached(read: Callable[[], Reading], max_age_s: float) -> Callable[[], Reading]:
    """``read``, done at most once every ``max_age_s``: for what is costly to measure at each scrape."""
    lock = threading.Lock()
    last: list = [-math.inf, None]  # when, what

    def reading() -> Reading:
        with lock:
            if time.monotonic() - last[0] > max_age_s:
                last[1], last[0] = read(), time.monotonic()
            return last[1]

    return reading


# --- connection errors, per minute in Redis ------------------------------------------------------


def connection_target(exc: BaseException) -> str | None:
    """``s3`` or ``mongodb`` when ``exc`` is a failure to reach that server, else None."""
    if isinstance(exc, botocore.exceptions.ConnectionError | botocore.exceptions.HTTPClientError):
        return "s3"
    if isinstance(exc, pymongo.errors.ConnectionFailure):
        return "mongodb"
    return None


def _minute_key(target: str, minute: int) -> str:
    return f"reviews:connection_errors:{target}:{minute}"


def record_connection_error(client: redis.Redis, target: str, now: float | None = None) -> None:
    CONNECTION_ERRORS.labels(target).inc()
    key = _minute_key(target, int((now or time.time()) // 60))
    with client.pipeline() as pipe:
        pipe.incr(key)
        pipe.expire(key, CONNECTION_ERRORS_KEPT_S)
        pipe.execute()


def connection_errors(client: redis.Redis, window_s: int, now: float | None = None) -> dict[str, int]:
    """Connection errors per target over the last ``window_s`` (whole minutes, the current one included)."""
    last = int((now or time.time()) // 60)
    minutes = range(last - max(1, window_s // 60) + 1, last + 1)
    counts = {}
    for target in CONNECTION_TARGETS:
        values = client.mget([_minute_key(target, m) for m in minutes])
        counts[target] = sum(int(v) for v in values if v is not None)
    return counts
