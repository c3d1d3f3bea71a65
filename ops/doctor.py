"""``reviews doctor``: the alert rules, evaluated against the running system.

One function per rule; each measures one thing and returns a ``Rule``: the value it
found, the threshold it alerts at, and a severity (ok; warning: look at it today, or
nothing to judge yet; critical: act now). The command prints every rule and exits 1 when
one is critical, so a cron job, a CI step or a person can alert on it. A rule that cannot
be evaluated (its server down) is critical: not knowing is not healthy.

Two rules need the doctor's earlier checks: ``/health`` failing several checks in a row,
and the API's latency since the previous check. The doctor is a short-lived command (cron,
CI, a person), so it keeps that memory in Redis: the store it already reads for the workers'
connection errors, shared by every host it may run on (any container of the compose stack),
where the entries expire by themselves. Not the run history: these are not facts of runs.
deploy/prometheus/rules.yml holds the same rules for a Prometheus server.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property, partial
from typing import Literal

import httpx
import redis
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from services.api.observability import OPERATIONAL_ROUTES
from shared import clients, retention, worker_metrics
from shared.clients import Clients
from shared.curated.versions import served_and_previous
from shared.history import History
from shared.lake import Lake
from shared.settings import Settings, get_settings

Severity = Literal["ok", "warning", "critical"]
HTTP_TIMEOUT_S = 5.0
# The doctor's memory of its earlier checks (see the module's doc).
HEALTH_CHECKS_KEY = "reviews:doctor:health_checks"
LATENCY_KEY = "reviews:doctor:api_latency"
MEMORY_KEPT_S = 7 * 24 * 3600


@dataclass(frozen=True)
class Rule:
    name: str
    severity: Severity
    value: str  # what was measured, for a person
    threshold: str  # when the rule fires

    @property
    def critical(self) -> bool:
        return self.severity == "critical"


def _fires(condition: bool) -> Severity:
    return "critical" if condition else "ok"


def _warns(condition: bool) -> Severity:
    return "warning" if condition else "ok"


class Scrape:
    """The API's GET /metrics, fetched by the first rule that reads it and kept for the others: one check,
    one scrape. A failed scrape is not kept: each rule that needs it reports the failure."""

    def __init__(self, http: httpx.Client, api_url: str):
        self._http, self._url = http, f"{api_url}/metrics"

    @cached_property
    def samples(self) -> list[Sample]:
        response = self._http.get(self._url)
        response.raise_for_status()
        return [s for f in text_string_to_metric_families(response.text) for s in f.samples]


def api_health(http: httpx.Client, api_url: str) -> Rule:
    """The API answers its readiness check: a curated version loaded, Redis and S3 reachable."""
    threshold = "GET /health/ready does not answer 200"
    try:
        response = http.get(f"{api_url}/health/ready")
    except httpx.HTTPError as exc:
        return Rule("api_health", "critical", f"unreachable at {api_url}: {exc!r}", threshold)
    if response.status_code == 200:
        body = response.json()
        return Rule("api_health", "ok", f"ready, serving {body['version']} ({body['rows']} reviews)", threshold)
    try:
        reasons = "; ".join(response.json()["reasons"])
    except (ValueError, KeyError):  # not the API's own answer (a proxy's error page, say)
        reasons = response.text[:200]
    return Rule("api_health", "critical", f"HTTP {response.status_code}: {reasons}", threshold)


def last_run(history: History) -> Rule:
    threshold = "the last finished run failed"
    run = history.last_finished_run()
    if run is None:
        return Rule("last_run", "warning", "no run has finished yet", threshold)
    value = f"{run['run_id']} {run['status']} at {run['finished_at']:%Y-%m-%d %H:%M} UTC"
    if run["error"]:
        value += f": {run['error'][:200]}"
    return Rule("last_run", _fires(run["status"] == "failed"), value, threshold)


def curated_age(lake: Lake, max_age_h: float, now: datetime | None = None) -> Rule:
    """How old the version the API serves is: a day without a new one means the daily run is missing."""
    threshold = f"older than {max_age_h:g} h"
    latest = lake.latest()
    if latest is None:
        return Rule("curated_age", "critical", "no curated version published", threshold)
    age_h = ((now or datetime.now(UTC)) - datetime.fromisoformat(latest.published_at)).total_seconds() / 3600
    return Rule("curated_age", _fires(age_h > max_age_h), f"{age_h:.1f} h ({latest.version})", threshold)


def api_5xx_rate(scrape: Scrape, max_share: float, window_s: int) -> Rule:
    """The share of 5xx among the API's responses of the last ``window_s``, as its metrics count them."""
    threshold = f"above {max_share:.0%} over {window_s} s"
    samples = {s.name: s.value for s in scrape.samples}
    total, errors = samples["api_recent_responses"], samples["api_recent_5xx"]
    if not total:
        return Rule("api_5xx_rate", "ok", f"no requests in the last {window_s} s", threshold)
    share = errors / total
    return Rule("api_5xx_rate", _fires(share > max_share), f"{share:.1%} ({errors:.0f} of {total:.0f})", threshold)


def reject_share(history: History, max_share: float) -> Rule:
    """The share of the last finished run's rows that validation rejected."""
    threshold = f"above {max_share:.0%} of the rows transformed"
    run = history.last_finished_run()
    transform = history.stage_summary(run["run_id"]).get("transform") if run else None
    if not transform or not transform["rows_in"]:
        return Rule("reject_share", "ok", "no finished run transformed rows yet", threshold)
    share = transform["rejects"] / transform["rows_in"]
    value = f"{share:.1%} ({transform['rejects']} of {transform['rows_in']}, run {run['run_id']})"
    return Rule("reject_share", _fires(share > max_share), value, threshold)


def connection_errors(client: redis.Redis, max_errors: int, window_s: int, now: float | None = None) -> Rule:
    """Failures of the workers to reach S3 or MongoDB, as they count them in Redis."""
    threshold = f"{max_errors} or more to one server in {window_s} s"
    counts = worker_metrics.connection_errors(client, window_s, now)
    value = ", ".join(f"{target} {n}" for target, n in counts.items()) + f" in the last {window_s} s"
    return Rule("connection_errors", _fires(max(counts.values()) >= max_errors), value, threshold)


def lake_retention(client: redis.Redis, days: int, now: datetime | None = None) -> Rule:
    """The oldest run the run zones held at the last daily expiry: overdue, the expiry stopped running or
    deleting, or a run is stuck, and buyers' rows outlive the retention."""
    overdue = days + retention.OVERDUE_AFTER_DAYS
    threshold = f"a run started more than {overdue} days ago left in the run zones"
    measured = retention.last_measure(client)
    if measured is None:
        return Rule("lake_retention", "ok", "not measured yet: the daily expiry has not run", threshold)
    at = f"measured {datetime.fromtimestamp(measured.measured_at, UTC):%Y-%m-%d %H:%M} UTC"
    if measured.oldest_run is None:
        return Rule("lake_retention", "ok", f"the run zones are empty ({at})", threshold)
    age_d = ((now or datetime.now(UTC)).timestamp() - measured.oldest_run) / 86400
    value = f"the oldest run started {age_d:.1f} days ago ({at})"
    if age_d > overdue:
        value += "; `reviews lake expire --dry-run` shows what is due"
    return Rule("lake_retention", _warns(age_d > overdue), value, threshold)


def _curated_size(name: str, lake: Lake, threshold: str, severity: Severity, alerts: Callable[[float], bool]) -> Rule:
    """The served curated file's size against the version before it: a collapse means lost input, a
    jump duplicated or foreign input, not that the catalogue changed overnight."""
    pair = served_and_previous(lake)
    if pair is None:
        return Rule(name, "ok", "no earlier version to compare with", threshold)
    current, previous = pair
    change = current.size_bytes / previous.size_bytes - 1
    value = (
        f"{change:+.0%}: {current.size_bytes:,} bytes ({current.version}) "
        f"vs {previous.size_bytes:,} ({previous.version})"
    )
    return Rule(name, severity if alerts(change) else "ok", value, threshold)


def curated_size_drop(lake: Lake, max_drop: float) -> Rule:
    threshold = f"more than {max_drop:.0%} smaller than the version before"
    return _curated_size("curated_size_drop", lake, threshold, "critical", lambda change: -change > max_drop)


def curated_size_growth(lake: Lake, max_growth: float) -> Rule:
    threshold = f"more than {max_growth:.0%} larger than the version before"
    return _curated_size("curated_size_growth", lake, threshold, "warning", lambda change: change > max_growth)


def run_duration(history: History, factor: float, runs: int) -> Rule:
    """The running run's time so far, or else the last successful run's, against the mean of the successful
    runs of its mode before it (an incremental run takes a fraction of a full one)."""
    threshold = f"above {factor:g} x the mean of the last {runs} successful runs of its mode"
    d = history.run_duration(runs)
    if d is None:
        return Rule("run_duration", "ok", "no run to judge yet", threshold)
    value = f"run {d.run_id} ({d.mode or 'not planned yet'}, {d.status}) {d.seconds:,.0f} s"
    if d.baseline_s is None:
        return Rule("run_duration", "ok", f"{value}; no earlier successful run of its mode", threshold)
    value += f" = {d.seconds / d.baseline_s:.1f} x the mean {d.baseline_s:,.0f} s of {d.baseline_runs} runs"
    return Rule("run_duration", _warns(d.seconds > factor * d.baseline_s), value, threshold)


def retries_exhausted(history: History, within_h: float) -> Rule:
    """Batches that gave up after their automatic retries: the run failed (or, for an archive batch, its
    archive is missing) and waits for an operator to fix the cause and `reviews retry` it."""
    threshold = f"a batch of a run of the last {within_h:g} h gave up after its automatic retries"
    dead = history.exhausted_batches(within_h)
    if not dead:
        return Rule("retries_exhausted", "ok", "none", threshold)
    shown = "; ".join(
        f"run {b['run_id']} ({b['run_status']}) {b['stage']} batch {b['batch_no']} after {b['retries']} retries, "
        f"{b['attempts']} attempts: {(b['last_error'] or '')[:120]}"
        for b in dead[:3]
    )
    more = f" and {len(dead) - 3} more" if len(dead) > 3 else ""
    return Rule("retries_exhausted", "warning", f"{shown}{more}; fix the cause, then `reviews retry RUN_ID`", threshold)


def api_liveness(http: httpx.Client, api_url: str, memory: redis.Redis, failures: int) -> Rule:
    """GET /health, with the doctor's earlier checks: one failure may be a blip, several in a row are not."""
    threshold = f"GET /health failed {failures} checks in a row"
    try:
        response = http.get(f"{api_url}/health")
        ok, detail = response.status_code == 200, f"HTTP {response.status_code}"
    except httpx.HTTPError as exc:
        ok, detail = False, f"unreachable: {exc!r}"
    with memory.pipeline() as pipe:
        pipe.lpush(HEALTH_CHECKS_KEY, json.dumps({"at": datetime.now(UTC).isoformat(), "ok": ok}))
        pipe.ltrim(HEALTH_CHECKS_KEY, 0, failures - 1)
        pipe.expire(HEALTH_CHECKS_KEY, MEMORY_KEPT_S)
        pipe.lrange(HEALTH_CHECKS_KEY, 0, -1)
        recent = [json.loads(entry)["ok"] for entry in pipe.execute()[-1]]  # newest first
    in_a_row = next((i for i, passed in enumerate(recent) if passed), len(recent))
    value = f"{'answering' if ok else 'failing, ' + detail}; the last {len(recent)} checks, newest first: " + ", ".join(
        "ok" if passed else "failed" for passed in recent
    )
    return Rule("api_liveness", _warns(in_a_row >= failures), value, threshold)


def histogram_quantile(q: float, buckets: dict[float, float]) -> float:
    """Prometheus's estimate from cumulative bucket counts by upper bound: linear within the bucket."""
    bounds = sorted(buckets)
    rank = q * buckets[math.inf]
    lower, below = 0.0, 0.0
    for upper in bounds:
        if buckets[upper] >= rank:
            if upper == math.inf:  # beyond the last finite bucket: its bound is all that is known
                return lower
            return lower + (upper - lower) * (rank - below) / (buckets[upper] - below)
        lower, below = upper, buckets[upper]
    return lower


def api_latency(scrape: Scrape, memory: redis.Redis, max_s: float, quantile: float) -> Rule:
    """The API's latency at ``quantile`` on storefront routes (probes and scrapes left out), from its own
    histogram: over the requests since the doctor's previous check, or since the API started."""
    threshold = f"p{quantile * 100:g} above {max_s * 1000:g} ms"
    counts: dict[float, float] = {}
    for s in scrape.samples:
        if s.name == "api_request_seconds_bucket" and s.labels["route"] not in OPERATIONAL_ROUTES:
            le = float(s.labels["le"])
            counts[le] = counts.get(le, 0.0) + s.value
    now = datetime.now(UTC)
    previous = memory.get(LATENCY_KEY)
    memory.set(LATENCY_KEY, json.dumps({"at": now.isoformat(), "counts": list(counts.items())}), ex=MEMORY_KEPT_S)
    window, since = counts, "since the API started"
    if previous is not None:
        before = json.loads(previous)
        earlier = dict(before["counts"])
        if earlier.keys() <= counts.keys() and all(counts[le] >= n for le, n in earlier.items()):  # no restart
            window = {le: counts[le] - earlier.get(le, 0.0) for le in counts}
            since = f"since the check at {datetime.fromisoformat(before['at']):%H:%M:%S} UTC"
    total = window.get(math.inf, 0.0)
    if not total:
        return Rule("api_latency", "ok", f"no storefront requests {since}", threshold)
    latency = histogram_quantile(quantile, window)
    value = f"p{quantile * 100:g} {latency * 1000:,.1f} ms over {total:,.0f} requests {since}"
    return Rule("api_latency", _warns(latency > max_s), value, threshold)


def evaluate(settings: Settings, c: Clients, http: httpx.Client) -> list[Rule]:
    """Every rule, in the order an operator reads them: serving first, then the runs, then the data."""
    api = settings.api_base_url
    scrape = Scrape(http, api)
    checks: list[partial[Rule]] = [
        partial(api_health, http, api),
        partial(api_liveness, http, api, c.redis, settings.alert_health_failures),
        partial(api_5xx_rate, scrape, settings.alert_api_5xx_share, settings.alert_api_window_s),
        partial(api_latency, scrape, c.redis, settings.alert_api_latency_s, settings.alert_api_latency_quantile),
        partial(last_run, c.history),
        partial(run_duration, c.history, settings.alert_run_duration_factor, settings.alert_run_duration_runs),
        partial(retries_exhausted, c.history, settings.alert_retries_window_h),
        partial(curated_age, c.lake, settings.alert_curated_max_age_h),
        partial(curated_size_drop, c.lake, settings.alert_size_drop_share),
        partial(curated_size_growth, c.lake, settings.alert_size_growth_share),
        partial(reject_share, c.history, settings.alert_reject_share),
        partial(lake_retention, c.redis, settings.lake_retention_days),
        partial(connection_errors, c.redis, settings.alert_connection_errors, settings.alert_connection_window_s),
    ]
    return [_evaluated(check) for check in checks]


def _evaluated(check: partial[Rule]) -> Rule:
    try:
        return check()
    except Exception as exc:  # whatever stopped the measurement is the finding
        return Rule(check.func.__name__, "critical", f"cannot evaluate: {exc!r}"[:300], "any error")


def format_rules(rules: list[Rule]) -> str:
    width = max(len(r.name) for r in rules)
    lines = [f"  {r.severity.upper():<8}  {r.name:<{width}}  {r.value}  [alert: {r.threshold}]" for r in rules]
    counts = {s: sum(r.severity == s for r in rules) for s in ("critical", "warning")}
    lines.append(f"{len(rules)} rules: {counts['critical']} critical, {counts['warning']} warning")
    return "\n".join(lines)


def cmd_doctor(args: argparse.Namespace) -> int:
    settings = get_settings()
    c = clients.init_operator(settings)
    with httpx.Client(timeout=HTTP_TIMEOUT_S) as http:
        rules = evaluate(settings, c, http)
    print(format_rules(rules))
    return 1 if any(r.critical for r in rules) else 0


def add_doctor_command(sub: argparse._SubParsersAction) -> None:
    doctor = sub.add_parser("doctor", help="evaluate the alert rules; exit 1 when one is critical")
    doctor.set_defaults(func=cmd_doctor)
