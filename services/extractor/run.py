"""A run's extraction, as the extract task does it: plan, resume, read page by page, announce each page."""

from __future__ import annotations

import structlog

from services.extractor.extract import connect_source, extract, next_watermark, watermark_cap, write_live_ids
from services.extractor.plan import plan_run
from shared.celery_app import CLASSIFIER_FINGERPRINT_KEY
from shared.clients import Clients
from shared.flow import DOWNSTREAM, BatchRef, Send
from shared.plan import BEGINNING, Watermark, plan_of
from shared.stages import Stage
from shared.tasks import BatchOutcome, record_batch

log = structlog.get_logger()


def extract_run(c: Clients, run_id: str, send: Send) -> int:
    """Extract the run's source rows in batches and announce each to the stages that read it; returns the
    rows extracted. A retry resumes after the last batch recorded; a run no longer running is left alone."""
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
    done = c.history.extracted_batches(run_id)
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
            erased=c.history.erased_pseudonyms(),
            pseudonym_key=c.settings.pseudonym_key.get_secret_value().encode(),
        ):
            ref = BatchRef(run_id, batch.batch, batch.key)
            for stage in DOWNSTREAM[Stage.EXTRACT]:
                send(stage.task, ref)
            outcome = BatchOutcome(batch.read, batch.rows, batch.key)
            record_batch(c.history, Stage.EXTRACT, run_id, batch.batch, outcome, cursor=batch.last)
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
    return rows


def _cursor(batch: dict) -> Watermark:
    return Watermark(batch["cursor_ts"], batch["cursor"])
