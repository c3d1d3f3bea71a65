from __future__ import annotations

from typing import Annotated

import anyio
from fastapi import APIRouter, Body, Path, Query

from services.api.deps import HistoryDep, OperatorDep, TokenDep
from services.api.errors import Conflict, NotFound, public_error
from services.api.models import (
    ErrorBody,
    Job,
    JobAccepted,
    JobList,
    JobRequest,
    JobRetried,
    LostBatch,
    RetriedBatch,
    RetryRequest,
    StageStatus,
)
from shared.flow import trigger_run
from shared.history import History
from shared.history.runs import RunAlreadyActive, RunNotFound
from shared.recovery import RetryRefused, operator_retry
from shared.stages import Stage

router = APIRouter(tags=["jobs"])
# FastAPI answers 400 before the route runs when a body is not text it can decode (say, bytes that are not UTF-8).
# services/api/body_limit.py answers 413 before the route or its token check runs.
BODY_REFUSED = {
    400: {"model": ErrorBody, "description": "The body could not be read as JSON"},
    413: {"model": ErrorBody, "description": "The body is over API_MAX_BODY_BYTES"},
}
# Run history and its errors are an operator's to read, not a shopper's: every route here needs the token.
TOKEN_REFUSED = {
    401: {"model": ErrorBody, "description": "No bearer token"},
    403: {"model": ErrorBody, "description": "The bearer token is not the operator's"},
}


def jobs_of(history: History, runs: list[dict]) -> list[Job]:
    """The runs as jobs: three queries whatever their number (the runs', then every stage summary at once,
    then every lost delivery at once)."""
    run_ids = [run["run_id"] for run in runs]
    summaries = history.stage_summaries(run_ids)
    lost: dict[str, list[LostBatch]] = {}
    for b in history.lost_batches(run_ids):
        lost.setdefault(b["run_id"], []).append(
            LostBatch(
                stage=b["stage"],
                batch=b["batch_no"],
                **{k: b[k] for k in LostBatch.model_fields if k not in ("stage", "batch")},
            )
        )
    return [_job(run, summaries.get(run["run_id"], {}), lost.get(run["run_id"], [])) for run in runs]


def _job(run: dict, summary: dict[str, dict], lost: list[LostBatch]) -> Job:
    stages = {
        name: StageStatus(
            succeeded=s["succeeded"],
            running=s["running"],
            retrying=s["retrying"],
            dead=s["dead"],
            lost=s["lost"],
            rows_in=s["rows_in"],
            rows_out=s["rows_out"],
            rejects=s["rejects"],
            attempts=s["attempts"],
            busy_seconds=round(s["busy_s"], 3),
            last_error=public_error(s["last_error"]),
        )
        for name, s in summary.items()
    }
    finished, started = run["finished_at"], run["started_at"]
    return Job(
        job_id=run["run_id"],
        status=run["status"],
        trigger=run["trigger"],
        params=run["params"],
        created_at=run["created_at"],
        started_at=started,
        finished_at=finished,
        duration_seconds=(finished - started).total_seconds() if finished and started else None,
        batches=run["extracted_batches"],
        source_rows=run["source_rows"],
        curated_rows=run["curated_rows"],
        curated_key=run["curated_key"],
        curated_bytes=run["curated_bytes"],
        error=public_error(run["error"]),
        mode=run["mode"],
        retries=run["retries"],
        mode_reason=run["mode_reason"],
        base_version=run["base_version"],
        watermark_from=run["watermark_from"],
        watermark_to=run["watermark_to"],
        changes=run["changes"],
        stages=stages,
        lost=lost,
    )


@router.post(
    "/jobs",
    status_code=202,
    response_model=JobAccepted,
    responses={**BODY_REFUSED, **TOKEN_REFUSED, 409: {"model": ErrorBody}},
)
async def create_job(history: HistoryDep, operator: OperatorDep, job: Annotated[JobRequest | None, Body()] = None):
    """Queue a pipeline run (the same run task as the CLI and the daily schedule), which starts within seconds; the
    audit trail records it. The API has no broker: the run is requested in the run history and the extract worker
    sends it (shared/run_requests.py)."""
    params = (job or JobRequest()).model_dump(exclude_defaults=True)
    try:
        run_id = await anyio.to_thread.run_sync(trigger_run, history, None, operator, params)
    except RunAlreadyActive as exc:
        raise Conflict(f"{exc}: follow it at /jobs/{exc.run_id}") from None
    return JobAccepted(job_id=run_id, status="queued")


@router.get(
    "/jobs/{job_id}",
    response_model=Job,
    dependencies=[TokenDep],
    responses={**TOKEN_REFUSED, 404: {"model": ErrorBody}},
)
async def get_job(history: HistoryDep, job_id: Annotated[str, Path(max_length=64)]) -> Job:
    """A run's status per stage: batches, rows, rejects, attempts, durations, errors; and each batch whose
    worker died mid-batch, with who held it and who took it over."""

    def load() -> Job | None:
        run = history.get_run(job_id)
        return jobs_of(history, [run])[0] if run else None

    job = await anyio.to_thread.run_sync(load)
    if job is None:
        raise NotFound(f"no job {job_id!r}")
    return job


@router.get("/jobs", response_model=JobList, dependencies=[TokenDep], responses=TOKEN_REFUSED)
async def list_jobs(history: HistoryDep, limit: Annotated[int, Query(ge=1, le=100)] = 20) -> JobList:
    """Recent runs, newest first."""

    def load() -> list[Job]:
        return jobs_of(history, history.list_runs(limit))

    return JobList(jobs=await anyio.to_thread.run_sync(load))


@router.post(
    "/jobs/{job_id}/retry",
    status_code=202,
    response_model=JobRetried,
    responses={
        **BODY_REFUSED,
        **TOKEN_REFUSED,
        404: {"model": ErrorBody},
        409: {"model": ErrorBody},
    },
)
async def retry_job(
    history: HistoryDep,
    operator: OperatorDep,
    job_id: Annotated[str, Path(max_length=64)],
    retry: Annotated[RetryRequest | None, Body()] = None,
) -> JobRetried:
    """Re-run a failed run's failed batches and what follows them, keeping what succeeded; it publishes once.

    409 for a run that is queued, running or succeeded, or that a later run supersedes."""
    retry = retry or RetryRequest()

    def run():
        stage = retry.stage and Stage(retry.stage)
        return operator_retry(history, None, operator, job_id, stage, retry.batch)

    try:
        retried = await anyio.to_thread.run_sync(run)
    except RunNotFound:
        raise NotFound(f"no job {job_id!r}") from None
    except RetryRefused as exc:
        raise Conflict(str(exc)) from None
    cleared = [
        RetriedBatch(
            stage=b["stage"],
            batch=b["batch_no"],
            was=b["status"],
            attempts=b["attempts"],
            last_error=public_error(b["last_error"]),
        )
        for b in retried.cleared
    ]
    return JobRetried(job_id=job_id, status="running", cleared=cleared, announced=retried.announced)
