"""``reviews doctor``: the alert rules, evaluated against the running system.

One function per rule; each measures one thing and returns a ``Rule``: the value it
found, the threshold it alerts at, and a severity (ok; warning: nothing to judge yet;
critical: act now). The command prints every rule and exits 1 when one is critical,
so a cron job, a CI step or a person can alert on it. A rule that cannot be evaluated
(its server down) is critical: not knowing is not healthy.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Literal

import httpx
import redis
from prometheus_client.parser import text_string_to_metric_families

from services.publisher.versions import list_versions
from shared import clients, metrics
from shared.clients import Clients
from shared.history import History
from shared.lake import Lake
from shared.settings import Settings, get_settings

Severity = Literal["ok", "warning", "critical"]
HTTP_TIMEOUT_S = 5.0


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


def api_5xx_rate(http: httpx.Client, api_url: str, max_share: float, window_s: int) -> Rule:
    """The share of 5xx among the API's responses of the last ``window_s``, as its metrics count them."""
    threshold = f"above {max_share:.0%} over {window_s} s"
    response = http.get(f"{api_url}/metrics")
    response.raise_for_status()
    samples = {s.name: s.value for f in text_string_to_metric_families(response.text) for s in f.samples}
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
    counts = metrics.connection_errors(client, window_s, now)
    value = ", ".join(f"{target} {n}" for target, n in counts.items()) + f" in the last {window_s} s"
    return Rule("connection_errors", _fires(max(counts.values()) >= max_errors), value, threshold)


def curated_size_drop(lake: Lake, max_drop: float) -> Rule:
    """The served curated file against the version before it: a collapse means lost input, not fewer reviews."""
    threshold = f"more than {max_drop:.0%} smaller than the version before"
    versions = list_versions(lake)  # newest first
    served = next((i for i, v in enumerate(versions) if v.latest), None)
    if served is None or served + 1 == len(versions):
        return Rule("curated_size_drop", "ok", "no earlier version to compare with", threshold)
    current, previous = versions[served], versions[served + 1]
    change = current.size_bytes / previous.size_bytes - 1
    value = (f"{change:+.0%}: {current.size_bytes:,} bytes ({current.version}) "
             f"vs {previous.size_bytes:,} ({previous.version})")  # fmt: skip
    return Rule("curated_size_drop", _fires(-change > max_drop), value, threshold)


def evaluate(settings: Settings, c: Clients, http: httpx.Client) -> list[Rule]:
    """Every rule, in the order an operator reads them: serving first, then the runs, then the data."""
    api = settings.api_base_url
    checks: list[partial[Rule]] = [
        partial(api_health, http, api),
        partial(api_5xx_rate, http, api, settings.alert_api_5xx_share, settings.alert_api_window_s),
        partial(last_run, c.history),
        partial(curated_age, c.lake, settings.alert_curated_max_age_h),
        partial(curated_size_drop, c.lake, settings.alert_size_drop_share),
        partial(reject_share, c.history, settings.alert_reject_share),
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
    c = clients.init(settings)
    with httpx.Client(timeout=HTTP_TIMEOUT_S) as http:
        rules = evaluate(settings, c, http)
    print(format_rules(rules))
    return 1 if any(r.critical for r in rules) else 0


def add_doctor_command(sub: argparse._SubParsersAction) -> None:
    doctor = sub.add_parser("doctor", help="evaluate the alert rules; exit 1 when one is critical")
    doctor.set_defaults(func=cmd_doctor)
