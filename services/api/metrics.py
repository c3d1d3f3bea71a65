"""Prometheus metrics of the API: request latency by route, errors, what is being served."""

from __future__ import annotations

import time

from fastapi import FastAPI, Request
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class ApiMetrics:
    """One registry per app: two apps in one process (tests) never share counters."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram("api_request_seconds", "Request latency by route", ["route", "method"],
                                 buckets=LATENCY_BUCKETS, registry=self.registry)  # fmt: skip
        self.responses = Counter("api_responses_total", "Responses by route and status class",
                                 ["route", "status"], registry=self.registry)  # fmt: skip
        self.errors = Counter("api_errors_total", "5xx responses by route", ["route"], registry=self.registry)
        self.curated_age = Gauge("api_curated_version_age_seconds", "Age of the curated version served",
                                 registry=self.registry)  # fmt: skip
        self.rows_served = Gauge("api_curated_rows", "Reviews in the curated version served", registry=self.registry)
        self.loads = Gauge("api_curated_loads", "Curated versions loaded since start", registry=self.registry)

    def install(self, app: FastAPI) -> None:
        @app.middleware("http")
        async def _observe(request: Request, call_next):
            start = time.perf_counter()
            status = 500
            try:
                response = await call_next(request)
                status = response.status_code
                return response
            finally:
                route = request.scope.get("route")
                name = getattr(route, "path", "unmatched")
                self.latency.labels(name, request.method).observe(time.perf_counter() - start)
                self.responses.labels(name, f"{status // 100}xx").inc()
                if status >= 500:
                    self.errors.labels(name).inc()
