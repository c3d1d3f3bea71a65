"""The alert rules that read only the run history and the served version's pointer, and what every rule is.

``reviews doctor`` (ops/doctor.py) evaluates them with the others; the API's console evaluates these itself, with
its own read-only clients. One function per rule; each measures one thing and returns a ``Rule``: the value it
found, the threshold it alerts at, and a severity (ok; warning: look at it today, or nothing to judge yet;
critical: act now). A rule that cannot be evaluated (its server down) is critical: not knowing is not healthy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Literal

from shared.history import History

Severity = Literal["ok", "warning", "critical"]
# How a rule shows a recorded error: ``reviews doctor`` its text, cut short; the API only what it may
# (services/api/errors.py: where it failed and the exception's class).
ErrorText = Callable[[str], str]


def cut_short(text: str) -> str:
    return text[:160]


@dataclass(frozen=True)
class Rule:
    name: str
    severity: Severity
    value: str  # what was measured, for a person
    threshold: str  # when the rule fires

    @property
    def critical(self) -> bool:
        return self.severity == "critical"


def fires(condition: bool) -> Severity:
    return "critical" if condition else "ok"


def warns(condition: bool) -> Severity:
    return "warning" if condition else "ok"


def last_run(history: History, error_text: ErrorText = cut_short) -> Rule:
    threshold = "the last finished run failed"
    run = history.last_finished_run()
    if run is None:
        return Rule("last_run", "warning", "no run has finished yet", threshold)
    value = f"{run['run_id']} {run['status']} at {run['finished_at']:%Y-%m-%d %H:%M} UTC"
    if run["error"]:
        value += f": {error_text(run['error'])}"
    return Rule("last_run", fires(run["status"] == "failed"), value, threshold)


def curated_age(lake, max_age_h: float, now: datetime | None = None) -> Rule:
    """How old the version the API serves is: a day without a new one means the daily run is missing. ``lake``:
    anything whose ``latest()`` is the served pointer (the lake, or the API's served version)."""
    threshold = f"older than {max_age_h:g} h"
    latest = lake.latest()
    if latest is None:
        return Rule("curated_age", "critical", "no curated version published", threshold)
    age_h = ((now or datetime.now(UTC)) - datetime.fromisoformat(latest.published_at)).total_seconds() / 3600
    return Rule("curated_age", fires(age_h > max_age_h), f"{age_h:.1f} h ({latest.version})", threshold)


def reject_share(history: History, max_share: float) -> Rule:
    """The share of the last finished run's rows that validation rejected."""
    threshold = f"above {max_share:.0%} of the rows transformed"
    run = history.last_finished_run()
    transform = history.stage_summary(run["run_id"]).get("transform") if run else None
    if not transform or not transform["rows_in"]:
        return Rule("reject_share", "ok", "no finished run transformed rows yet", threshold)
    share = transform["rejects"] / transform["rows_in"]
    value = f"{share:.1%} ({transform['rejects']} of {transform['rows_in']}, run {run['run_id']})"
    return Rule("reject_share", fires(share > max_share), value, threshold)


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
    return Rule("run_duration", warns(d.seconds > factor * d.baseline_s), value, threshold)


def retries_exhausted(history: History, within_h: float, error_text: ErrorText = cut_short) -> Rule:
    """Batches that gave up after their automatic retries: the run failed (or, for an archive batch, its
    archive is missing) and waits for an operator to fix the cause and `reviews retry` it."""
    threshold = f"a batch of a run of the last {within_h:g} h gave up after its automatic retries"
    dead = history.exhausted_batches(within_h)
    if not dead:
        return Rule("retries_exhausted", "ok", "none", threshold)
    shown = "; ".join(
        f"run {b['run_id']} ({b['run_status']}) {b['stage']} batch {b['batch_no']} after {b['retries']} retries, "
        f"{b['attempts']} attempts: {error_text(b['last_error'] or '')}"
        for b in dead[:3]
    )
    more = f" and {len(dead) - 3} more" if len(dead) > 3 else ""
    return Rule("retries_exhausted", "warning", f"{shown}{more}; fix the cause, then `reviews retry RUN_ID`", threshold)


def evaluated(check: partial[Rule]) -> Rule:
    try:
        return check()
    except Exception as exc:  # whatever stopped the measurement is the finding
        return Rule(check.func.__name__, "critical", f"cannot evaluate: {exc!r}"[:300], "any error")
