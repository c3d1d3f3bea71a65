"""Publish tasks: the run's last step, fired once by the completion barrier; and beat's sweep, lease check and
expiry."""

from __future__ import annotations

import structlog
from celery import signals
from prometheus_client import REGISTRY

from services.publisher import run_gauges
from services.publisher.run import publish_run
from shared import clients, heartbeats, recovery, retention
from shared.celery_app import app
from shared.curated.versions import UnknownVersion, operator_rollback
from shared.history.audit import Actor
from shared.run_requests import ROLLBACK_KINDS, RequestListener, claim_kinds
from shared.stages import EXPIRE_TASK, RECLAIM_TASK, SWEEP_TASK, Stage
from shared.tasks import BatchRef, send, stage_task

log = structlog.get_logger()


@signals.worker_init.connect
def _serve_run_gauges(**_) -> None:
    c = clients.get()  # made by shared.tasks' worker_init handler, connected before this one
    for gauge in run_gauges.gauges(c.history, c.lake, c.redis, c.settings):
        REGISTRY.register(gauge)


@stage_task(Stage.PUBLISH)
def run(self, ref: dict) -> str:
    ref = BatchRef(**ref)
    c = clients.get()
    record = c.history.get_run(ref.run_id)
    if record is None or record["status"] != "running":
        log.warning("publish_skipped", run_id=ref.run_id, status=record and record["status"])
        return ""
    return self.run_batch(ref, lambda: publish_run(c, record)).output_key


# Not a StageTask: there is no batch to record, and beat fires it again soon after a failure.
@app.task(name=SWEEP_TASK, stage=Stage.PUBLISH)
def sweep() -> list[str]:
    """Fired by beat: re-announce the work of runs that stopped moving."""
    c = clients.get()
    return recovery.sweep(c.history, send, c.settings.stalled_after_s)


@app.task(name=RECLAIM_TASK, stage=Stage.PUBLISH)
def reclaim() -> list[str]:
    """Fired by beat every few seconds: announce again the batches whose worker died (their lease ran out). Its
    arrival says beat is alive (shared/heartbeats.py)."""
    history = clients.get().history
    heartbeats.beat_seen(history)
    return recovery.reclaim(history, send)


@app.task(name=EXPIRE_TASK, stage=Stage.PUBLISH)
def expire() -> dict[str, int]:
    """Fired by beat daily: delete the run zones' objects past LAKE_RETENTION_DAYS, measure the lake."""
    c = clients.get()
    return retention.expire_and_measure(c.lake, c.history, c.redis, c.settings.lake_retention_days).objects()


_listener: RequestListener | None = None


@signals.worker_ready.connect
def _claim_rollbacks(**_) -> None:
    """Rollbacks the API requests (it may not write the lake), done here in the operator's name."""
    global _listener
    c = clients.get()

    def claim() -> int:
        return claim_kinds(c.history, ROLLBACK_KINDS, lambda r: requested_rollback(c, r))

    _listener = RequestListener(c.settings.worker_metadata_dsn, claim).start()


@signals.worker_shutting_down.connect
def _stop_claiming(**_) -> None:
    if _listener is not None:
        _listener.stop()


def requested_rollback(c: clients.Clients, request: dict) -> list[str]:
    """Serve again the version a run published, as the API's operator asked; recorded once in the audit trail. A
    version pruned since is refused there, and not tried again."""
    operator = Actor(request["actor"] or "api", "api")
    try:
        version = operator_rollback(
            c.lake, c.redis, c.history, operator, request["run_id"], c.settings.api_reviews_per_product
        )
    except UnknownVersion as exc:
        log.warning("rollback_refused", to=request["run_id"], operator=operator.name, reason=str(exc))
        return []
    return [f"rollback to {version.version}"]
