"""What the operator's console reads and does beyond the jobs routes: the audit trail, a run's batches as a grid
and its log lines, health at a glance with the alert rules and the versions kept, the stages' workers, a rollback.
Every route needs the operator token.
"""

from __future__ import annotations

from functools import partial
from typing import Annotated

import anyio
from fastapi import APIRouter, Body, Path, Query, Request
from fastapi.responses import JSONResponse

from services.api.deps import HistoryDep, HolderDep, OperatorDep, SettingsDep, TokenDep
from services.api.errors import NotFound, public_error
from services.api.models import (
    AlertRule,
    AuditAction,
    AuditTrail,
    ConsoleHealth,
    ErrorBody,
    KeptVersion,
    RollbackAccepted,
    RollbackRequest,
    RunGrid,
    RunLogs,
    StageWorkers,
    WorkerState,
    WorkerStates,
)
from services.api.routes.health import readiness
from services.api.routes.jobs import BODY_REFUSED, TOKEN_REFUSED
from shared.alert_rules import Rule, curated_age, evaluated, last_run, reject_share, retries_exhausted, run_duration
from shared.heartbeats import BEAT, stale_after_s
from shared.history import History
from shared.history.audit import MAX_PAGE
from shared.history.runs import RunNotFound
from shared.log_files import run_lines
from shared.settings import Settings
from shared.stages import Stage

router = APIRouter(tags=["console"], dependencies=[TokenDep])
# One answer's batches: a 1M-review run in batches of 1,000 has 4,000 (BENCHMARKS.md measures the route).
MAX_GRID_BATCHES = 20_000
# Lines per component of one answer, and how much of each log's end is read for them.
MAX_LOG_LINES = 500
# The rules the API evaluates itself; the others read the lake's curated files, the workers' counters or the
# doctor's own memory, which the API may not or does not keep.
DOCTOR_ONLY = (
    "api_liveness",
    "api_5xx_rate",
    "api_latency",
    "curated_size_drop",
    "curated_size_growth",
    "lake_retention",
    "connection_errors",
)
# How far back the previous version is looked for among the runs.
RECENT_RUNS = 50

RunId = Annotated[str, Path(max_length=64)]


@router.get("/audit", response_model=AuditTrail, responses=TOKEN_REFUSED)
async def audit(
    history: HistoryDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    before: Annotated[int | None, Query(ge=1, le=2**62, description="only actions older than this id")] = None,
) -> AuditTrail:
    """The operators' actions (trigger, retry, rollback, erasure; API and CLI), newest first."""
    rows = await anyio.to_thread.run_sync(history.audit_trail, limit, before)
    return AuditTrail(actions=[AuditAction(**row) for row in rows])


@router.get("/jobs/{job_id}/batches", response_model=RunGrid, responses={**TOKEN_REFUSED, 404: {"model": ErrorBody}})
async def run_grid(history: HistoryDep, job_id: RunId) -> JSONResponse:
    """Every batch of a run, stage by stage: the console's grid. One query, whatever the run's size."""

    def load() -> list[dict] | None:
        return history.batch_grid(job_id, MAX_GRID_BATCHES + 1) if history.get_run(job_id) else None

    rows = await anyio.to_thread.run_sync(load)
    if rows is None:
        raise NotFound(f"no job {job_id!r}")
    # Plain dicts, rendered once: thousands of models validated twice (built, then as the response) cost
    # most of the answer's time. The schema is RunGrid's, which tests/api/test_schema.py holds it to.
    batches = [
        {
            "stage": b["stage"],
            "batch": b["batch_no"],
            "status": b["status"],
            "attempts": b["attempts"],
            "rows_in": b["rows_in"],
            "rows_out": b["rows_out"],
            "rejects": b["rejects"],
            "seconds": b["seconds"],
            "error": public_error(b["last_error"]),
        }
        for b in rows[:MAX_GRID_BATCHES]
    ]
    return JSONResponse({"job_id": job_id, "batches": batches, "truncated": len(rows) > MAX_GRID_BATCHES})


@router.get("/jobs/{job_id}/logs", response_model=RunLogs, responses={**TOKEN_REFUSED, 404: {"model": ErrorBody}})
async def run_logs(
    settings: SettingsDep,
    history: HistoryDep,
    job_id: RunId,
    last: Annotated[int, Query(ge=1, le=MAX_LOG_LINES)] = 100,
) -> RunLogs:
    """A run's last log lines from every component of this host, as `reviews logs --run` shows them."""
    if await anyio.to_thread.run_sync(history.get_run, job_id) is None:
        raise NotFound(f"no job {job_id!r}")
    lines = await anyio.to_thread.run_sync(run_lines, settings.state_path / "logs", job_id, last)
    return RunLogs(job_id=job_id, components=lines)


class _Served:
    """What ``curated_age`` reads of the lake, from the version this API serves."""

    def __init__(self, version):
        self._version = version

    def latest(self):
        return self._version


@router.get("/console/health", response_model=ConsoleHealth, responses=TOKEN_REFUSED)
async def console_health(
    request: Request, settings: SettingsDep, history: HistoryDep, holder: HolderDep
) -> ConsoleHealth:
    """Health at a glance: the served version and the one before it (rows, bytes, a warning when their sizes differ
    by more than the alert shares), the versions kept, and the alert rules the API can evaluate (a recorded error
    shown as the jobs routes show it: where it failed and the exception's class)."""
    served = await readiness(request, holder)
    index = holder.index

    def evaluate() -> tuple[list[Rule], list[dict], dict | None]:
        checks = [
            (last_run, history, public_error),
            (run_duration, history, settings.alert_run_duration_factor, settings.alert_run_duration_runs),
            (retries_exhausted, history, settings.alert_retries_window_h, public_error),
            (curated_age, _Served(index and index.version), settings.alert_curated_max_age_h),
            (reject_share, history, settings.alert_reject_share),
        ]
        rules = [evaluated(partial(f, *args)) for f, *args in checks]
        return (
            rules,
            kept_versions(history, served.version, settings.curated_versions_kept),
            previous_version(history, served.version),
        )

    rules, kept, previous = await anyio.to_thread.run_sync(evaluate)
    served_run = next((r for r in kept if r["run_id"] == served.version), None)
    record = partial(_kept, served=served.version)
    return ConsoleHealth(
        served=served,
        served_version=served_run and record(served_run),
        previous=previous and record(previous),
        size_warning=size_warning(served_run, previous, settings),
        kept=[record(r) for r in kept],
        rules=[AlertRule(name=r.name, severity=r.severity, value=r.value, threshold=r.threshold) for r in rules],
        doctor_only=list(DOCTOR_ONLY),
    )


def _kept(run: dict, served: str | None) -> KeptVersion:
    return KeptVersion(
        version=run["run_id"],
        rows=run["curated_rows"],
        bytes=run["curated_bytes"],
        finished_at=run["finished_at"],
        served=run["run_id"] == served,
    )


def size_warning(served: dict | None, previous: dict | None, settings: Settings) -> str | None:
    """Said when the served version is smaller or larger than the previous by more than the alert shares (the
    curated_size rules of `reviews doctor`); None when they agree or a size is unknown."""
    sizes = (served or {}).get("curated_bytes"), (previous or {}).get("curated_bytes")
    if not all(sizes):
        return None
    change = sizes[0] / sizes[1] - 1
    if -change > settings.alert_size_drop_share:
        judged = f"{-change:.0%} smaller than the previous one (more than {settings.alert_size_drop_share:.0%})"
    elif change > settings.alert_size_growth_share:
        judged = f"{change:.0%} larger than the previous one (more than {settings.alert_size_growth_share:.0%})"
    else:
        return None
    return f"The served version is {judged}: {sizes[0]:,} bytes against {sizes[1]:,}."


@router.get("/console/workers", response_model=WorkerStates, responses=TOKEN_REFUSED)
async def console_workers(settings: SettingsDep, history: HistoryDep) -> WorkerStates:
    """Each stage's workers and beat, live or stale, from the heartbeats they record in the run history (the API
    has no broker to ask). A stage whose ``live`` is 0 has no worker doing its work."""
    rows = await anyio.to_thread.run_sync(history.worker_heartbeats)
    bound = stale_after_s(settings)
    stages = []
    for stage in [s.value for s in Stage] + [BEAT]:
        workers = [
            WorkerState(
                worker=r["worker"],
                host=r["host"],
                pid=r["pid"],
                started_at=r["started_at"],
                last_seen=r["last_seen"],
                age_seconds=round(r["age_s"], 3),
                live=r["age_s"] < bound,
            )
            for r in rows
            if r["stage"] == stage
        ]
        stages.append(StageWorkers(stage=stage, live=sum(w.live for w in workers), workers=workers))
    return WorkerStates(stale_after_seconds=bound, stages=stages)


@router.post(
    "/curated/rollback",
    status_code=202,
    response_model=RollbackAccepted,
    responses={**BODY_REFUSED, **TOKEN_REFUSED, 404: {"model": ErrorBody}},
)
async def rollback(
    history: HistoryDep,
    holder: HolderDep,
    operator: OperatorDep,
    body: Annotated[RollbackRequest | None, Body()] = None,
) -> RollbackAccepted:
    """Serve another curated version (default: the one before the served one). Requested in the run history for
    the publish worker to do, as the API may not write the lake; the audit trail shows how it ended, the served
    version changes within seconds. 404 for a version no successful run published."""
    to = (body or RollbackRequest()).to
    if to is None:
        index = holder.index
        previous = await anyio.to_thread.run_sync(previous_version, history, index and index.version.version)
        if previous is None:
            raise NotFound("no curated version before the served one")
        to = previous["run_id"]
    try:
        await anyio.to_thread.run_sync(history.request_rollback, to, operator.name)
    except RunNotFound:
        raise NotFound(f"no curated version {to!r}: a version is the id of a run that published it") from None
    return RollbackAccepted(status="requested", to=to)


def _published(history: History) -> list[dict]:
    return [r for r in history.list_runs(RECENT_RUNS) if r["status"] == "succeeded" and r["curated_key"]]


def kept_versions(history: History, served: str | None, keep: int) -> list[dict]:
    """The versions the publisher keeps, newest first: the newest ``keep`` published (it prunes the others after
    each publish) and the served one, which it never prunes."""
    published = _published(history)
    kept = published[:keep]
    if served is not None and all(r["run_id"] != served for r in kept):
        run = history.get_run(served)
        if run is not None and run["curated_key"]:
            kept = sorted([*kept, run], key=lambda r: r["run_id"], reverse=True)
    return kept


def previous_version(history: History, served: str | None) -> dict | None:
    """The newest run that published a version before the served one (among the recent runs), or None."""
    older = [r for r in _published(history) if served is None or r["run_id"] < served]
    return older[0] if older else None
