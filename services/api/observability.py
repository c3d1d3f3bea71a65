"""What the API shows Prometheus: request latency by route, errors, what is being served.

Besides the usual counters, the API keeps its responses of the last few minutes
(``ALERT_API_WINDOW_S``) and shows them as two gauges: ``reviews doctor`` reads the
5xx rate over that window from one scrape, without a Prometheus server to compute
``rate()`` over the counters.

With several worker processes (``API_WORKERS``) a scrape reaches one of them, so each
process writes its metrics to files in ``PROMETHEUS_MULTIPROC_DIR`` (prometheus_client's
multiprocess mode, which ``python -m services.api`` sets up) and a scrape adds up the
files of every process. Multiprocess mode has no function gauges: each process sets its
gauges from its own state every second (``keep_gauges_fresh``) and the scraped one just
before answering; a gauge says how it combines the processes' values.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from services.api.serving.holder import IndexHolder

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# Probes and scrapes are not storefront traffic: a readiness 503 is the health alert's business.
OPERATIONAL_ROUTES = frozenset({"/health", "/health/ready", "/metrics"})


class RecentResponses:
    """Responses and 5xx of the last ``window_s`` seconds, in buckets of ``bucket_s`` (the window's edge).

    Only the event loop touches it (the middleware adds, a scrape reads), so it needs no lock.
    """

    def __init__(self, window_s: int, bucket_s: int = 10, clock: Callable[[], float] = time.monotonic):
        self._buckets_in_window = max(1, window_s // bucket_s)
        self._bucket_s = bucket_s
        self._clock = clock
        self._buckets: deque[list[int]] = deque()  # [bucket number, responses, 5xx], oldest first

    def _now(self) -> int:
        return int(self._clock() // self._bucket_s)

    def add(self, server_error: bool) -> None:
        now = self._now()
        if not self._buckets or self._buckets[-1][0] != now:
            self._buckets.append([now, 0, 0])
            while self._buckets[0][0] <= now - self._buckets_in_window:
                self._buckets.popleft()
        self._buckets[-1][1] += 1
        self._buckets[-1][2] += server_error

    def totals(self) -> tuple[int, int]:
        """(responses, 5xx) within the window."""
        oldest = self._now() - self._buckets_in_window
        kept = [b for b in self._buckets if b[0] > oldest]
        return sum(b[1] for b in kept), sum(b[2] for b in kept)


def prune_dead_processes(directory: Path) -> None:
    """Forget the gauges of worker processes that have exited (a crashed worker that uvicorn replaced):
    their last values would otherwise count for ever. Their counters stay, as counters should."""
    pids = {int(m[1]) for f in directory.glob("gauge_live*.db") if (m := re.search(r"_(\d+)\.db$", f.name))}
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            multiprocess.mark_process_dead(pid, str(directory))
        except PermissionError:  # alive, another user's
            pass


class ApiMetrics:
    """One registry per app: in a single-process API, two apps in one process (tests) never share counters.

    ``multiprocess_dir``: the folder the processes of a multi-worker API write their metrics to
    (``PROMETHEUS_MULTIPROC_DIR``); a scrape then reports all of them. There values live in one file
    per process, so apps in one process do share them.
    """

    def __init__(self, window_s: int, multiprocess_dir: Path | None = None) -> None:
        self._multiprocess_dir = multiprocess_dir
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "api_request_seconds",
            "Request latency by route",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.responses = Counter(
            "api_responses_total", "Responses by route and status class", ["route", "status"], registry=self.registry
        )
        self.errors = Counter("api_errors_total", "5xx responses by route", ["route"], registry=self.registry)
        # Across processes: the oldest version any of them serves, the fewest rows, the fewest loads.
        self.curated_age = Gauge(
            "api_curated_version_age_seconds",
            "Age of the curated version served",
            multiprocess_mode="livemax",
            registry=self.registry,
        )
        self.rows_served = Gauge(
            "api_curated_rows",
            "Reviews in the curated version served",
            multiprocess_mode="livemin",
            registry=self.registry,
        )
        self.loads = Gauge(
            "api_curated_loads",
            "Curated versions loaded since start",
            multiprocess_mode="livemin",
            registry=self.registry,
        )
        self.recent = RecentResponses(window_s)
        self.recent_responses = Gauge(
            "api_recent_responses",
            f"Responses in the last {window_s} s, probes and scrapes excluded",
            multiprocess_mode="livesum",
            registry=self.registry,
        )
        self.recent_5xx = Gauge(
            "api_recent_5xx",
            f"5xx responses in the last {window_s} s, probes and scrapes excluded",
            multiprocess_mode="livesum",
            registry=self.registry,
        )

    def set_gauges(self, holder: IndexHolder) -> None:
        """Set the gauges from this process's state."""
        responses, errors = self.recent.totals()
        self.recent_responses.set(responses)
        self.recent_5xx.set(errors)
        if holder.index is not None:
            self.curated_age.set(holder.index.age_seconds())
            self.rows_served.set(holder.index.rows)
        self.loads.set(holder.loads)

    async def keep_gauges_fresh(self, holder: IndexHolder, every_s: float = 1.0) -> None:
        """Set the gauges every ``every_s``, so that a scrape another process answers sees this one's gauges fresh."""
        while True:
            self.set_gauges(holder)
            await asyncio.sleep(every_s)

    def exposition(self, holder: IndexHolder) -> bytes:
        """The Prometheus text of this process, or of every process in multiprocess mode."""
        self.set_gauges(holder)
        if self._multiprocess_dir is None:
            return generate_latest(self.registry)
        prune_dead_processes(self._multiprocess_dir)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=str(self._multiprocess_dir))
        return generate_latest(registry)

    def install(self, app: FastAPI) -> None:
        # A plain ASGI middleware: Starlette's @app.middleware("http") runs every request through a task
        # group and memory streams, a cost a cheap route pays in full.
        metrics = self

        class Observe:
            def __init__(self, app: ASGIApp):
                self.app = app

            async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
                if scope["type"] != "http":
                    await self.app(scope, receive, send)
                    return
                start = time.perf_counter()
                status = 500  # unless a response starts: an exception escaping the app is a 500

                async def observed(message: Message) -> None:
                    nonlocal status
                    if message["type"] == "http.response.start":
                        status = message["status"]
                    await send(message)

                try:
                    await self.app(scope, receive, observed)
                finally:
                    metrics.observe(scope, status, time.perf_counter() - start)

        app.add_middleware(Observe)

    def observe(self, scope: Scope, status: int, seconds: float) -> None:
        name = getattr(scope.get("route"), "path", "unmatched")
        self.latency.labels(name, scope["method"]).observe(seconds)
        self.responses.labels(name, f"{status // 100}xx").inc()
        if status >= 500:
            self.errors.labels(name).inc()
        if name not in OPERATIONAL_ROUTES:
            self.recent.add(status >= 500)
