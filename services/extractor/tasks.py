"""Extract tasks: start a run (beat's daily trigger), and extract it batch by batch."""

from __future__ import annotations

import structlog

from services.extractor.extract import connect_source, extract, next_watermark, watermark_cap, write_live_ids
from services.extractor.plan import plan_run
from shared import clients, metrics
from shared.celery_app import CLASSIFIER_FINGERPRINT_KEY, app
from shared.history import BEGINNING, RunAlreadyActive, Stage, Watermark, plan_of
from shared.settings import get_settings
from shared.tasks import BatchRef, StageTask, publish_if_complete, retries_within, send

log = structlog.get_logger()


@app.task(name="extract.start", bind=True, base=StageTask, stage=Stage.EXTRACT)
def start(self, trigger: str = "beat", params: dict | None = None) -> str:
    """Create a run and enqueue its extraction: what beat fires every day."""
    try:
        run_id = clients.get().history.create_run(trigger, params)
    except RunAlreadyActive as exc:
        log.warning("run_already_active", run_id=exc.run_id)
        return exc.run_id
    send("extract.run", BatchRef(run_id, 0, ""))
    return run_id


@app.task(
    name="extract.run",
    bind=True,
    base=StageTask,
    stage=Stage.EXTRACT,
    # An unreachable source is retried with backoff for this long, then fails the run.
    max_retries=retries_within(get_settings().source_retry_for_s),
)
def run(self, ref: dict) -> int:
    run_id = BatchRef(**ref).run_id
    c = clients.get()
    c.history.start_run(run_id)
    record = c.history.get_run(run_id)
    if record is None or record["status"] != "running":
        log.warning("run_not_running", status=record and record["status"])
        return 0
    params = record["params"]
    announced = c.redis.get(CLASSIFIER_FINGERPRINT_KEY)
    plan = plan_of(record) or c.history.set_plan(
        run_id, plan_run(params, c.lake, c.history, announced.decode() if announced else None)
    )
    log.info("run_planned", mode=plan.mode, reason=plan.reason, base_version=plan.base_version)
    since = plan.since or BEGINNING
    done = c.history.extracted_batches(run_id)  # a retry resumes after what is already out
    limit = params.get("limit")
    conn = connect_source(c.settings.source_reader_dsn)
    try:
        c.history.cap_watermark(run_id, watermark_cap(conn, c.settings.watermark_lag_s))
        for batch in extract(
            conn,
            c.lake,
            run_id,
            params.get("batch_size") or c.settings.batch_size,
            first_batch=len(done) + 1,
            after=_cursor(done[-1]) if done else since,
            limit=None if limit is None else limit - sum(b["rows_out"] for b in done),
        ):
            ref = BatchRef(run_id, batch.batch, batch.key)
            send("archive.batch", ref)
            send("transform.batch", ref)
            c.history.finish_batch(
                run_id,
                Stage.EXTRACT,
                batch.batch,
                rows_in=batch.rows,
                rows_out=batch.rows,
                output_key=batch.key,
                cursor=batch.last,
            )
            metrics.record_batch(Stage.EXTRACT.value, batch.rows, batch.rows, rejects=0)
        if plan.mode == "incremental":  # from the same snapshot as the pages: what deletions left
            write_live_ids(conn, c.lake, run_id)
    finally:
        conn.close()
    done = c.history.extracted_batches(run_id)
    rows = sum(b["rows_out"] for b in done)
    if not done and plan.mode == "full":
        c.history.fail_run(run_id, "the source has no reviews to extract")
        return 0
    cap = c.history.get_run(run_id)["watermark_cap"]
    watermark = next_watermark(since, _cursor(done[-1]) if done else None, cap)
    retries = c.history.set_extracted(run_id, len(done), rows, watermark)
    log.info("run_extracted", mode=plan.mode, batches=len(done), rows=rows, watermark=str(watermark), retries=retries)
    publish_if_complete(run_id)  # every batch may be classified already; an unchanged source has none
    return rows


def _cursor(batch: dict) -> Watermark:
    return Watermark(batch["cursor_ts"], batch["cursor"])
