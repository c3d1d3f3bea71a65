"""Publish task: the run's last step, fired once by the completion barrier."""

from __future__ import annotations

import structlog

from services.publisher import publish, sweep
from shared import clients
from shared.celery_app import app
from shared.history import Stage
from shared.tasks import BatchOutcome, BatchRef, StageTask, send

log = structlog.get_logger()


@app.task(name="publish.run", bind=True, base=StageTask, stage=Stage.PUBLISH)
def publish_run(self, ref: dict) -> str:
    ref = BatchRef(**ref)
    c = clients.get()
    record = c.history.get_run(ref.run_id)
    if record is None or record["status"] != "running":
        log.warning("publish_skipped", run_id=ref.run_id, status=record and record["status"])
        return ""

    def work() -> BatchOutcome:
        keys = [b["output_key"] for b in c.history.batches(ref.run_id, Stage.CLASSIFY) if b["status"] == "succeeded"]
        version = publish.publish(
            c.lake, ref.run_id, keys, c.settings.curated_versions_kept, c.history.erased_pseudonyms()
        )
        c.history.finish_run(ref.run_id, version.key, version.rows)
        publish.announce(c.redis, version)
        return BatchOutcome(version.rows, version.rows, version.key)

    return self.run_batch(ref, work).output_key


@app.task(name="publish.sweep")
def sweep_runs() -> list[str]:
    """Fired by beat: re-announce the work of runs that stopped moving."""
    c = clients.get()
    return sweep.sweep(c.history, send, c.settings.stalled_after_s)
