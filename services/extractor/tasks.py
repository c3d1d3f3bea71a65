"""Extract tasks: start a run (beat's daily trigger), and extract it batch by batch; the extract worker also
sends the runs the API requests (shared/run_requests.py)."""

from __future__ import annotations

import structlog
from celery import signals

from services.extractor.run import extract_run
from shared import clients
from shared.flow import BatchRef, start_run
from shared.history.runs import RunAlreadyActive
from shared.run_requests import RequestListener, claim_all
from shared.settings import get_settings
from shared.stages import START_TASK, Stage
from shared.tasks import publish_if_complete, retries_within, send, stage_task

log = structlog.get_logger()


@stage_task(Stage.EXTRACT, START_TASK)
def start(self, trigger: str = "beat", params: dict | None = None) -> str:
    """Start a run as the CLI and the API do: what beat fires every day."""
    try:
        return start_run(clients.get().history, send, trigger, params or {})
    except RunAlreadyActive as exc:
        log.warning("run_already_active", run_id=exc.run_id)
        return exc.run_id


# An unreachable source is retried with backoff for this long, then fails the run.
@stage_task(Stage.EXTRACT, max_retries=retries_within(get_settings().source_retry_for_s))
def run(self, ref: dict) -> int:
    run_id = BatchRef(**ref).run_id
    c = clients.get()
    with self.holding(BatchRef(run_id, 0, "")) as start:  # the extraction is held as batch 0
        if start.already_done:  # dead-lettered: its worker kept dying
            return 0
        rows = extract_run(c, run_id, send)
    c.history.end_extraction_task(run_id)  # unless set_extracted did: the run ended first, or had nothing to read
    publish_if_complete(run_id)  # every batch may be classified already; an unchanged source has none
    return rows


_listener: RequestListener | None = None


@signals.worker_ready.connect
def _claim_run_requests(**_) -> None:
    global _listener
    c = clients.get()
    _listener = RequestListener(c.settings.worker_metadata_dsn, lambda: claim_all(c.history, send)).start()


@signals.worker_shutting_down.connect  # before worker_shutdown closes the clients it sends with
def _stop_claiming(**_) -> None:
    if _listener is not None:
        _listener.stop()
