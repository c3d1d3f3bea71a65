"""Publish task: the run's last step, fired once by the completion barrier."""

from __future__ import annotations

from functools import partial

import numpy as np
import structlog
from celery import signals
from prometheus_client import REGISTRY

from services.classifier.scoring import relevance
from services.publisher import publish, run_metrics, sweep
from shared import clients
from shared.celery_app import app
from shared.clients import Clients
from shared.history import Stage, as_of, plan_of
from shared.lake import curated_key, live_ids_key
from shared.tasks import BatchOutcome, BatchRef, StageTask, send

log = structlog.get_logger()


def base_of(c: Clients, run: dict) -> publish.Base | None:
    """What an incremental run builds upon; None for a full run."""
    plan = plan_of(run)
    if plan is None or plan.mode != "incremental":
        return None
    reread = [
        c.lake.get_table(b["output_key"], columns=["review_id"]).column(0).to_numpy()
        for b in c.history.extracted_batches(run["run_id"])
    ]
    base_run = c.history.get_run(plan.base_version)
    return publish.Base(
        key=curated_key(plan.base_version),
        fingerprint=base_run["model_fingerprint"],
        reread_ids=np.sort(np.concatenate(reread)) if reread else np.zeros(0, dtype=np.int64),
        live_ids=c.lake.get_table(live_ids_key(run["run_id"])).column(0).to_numpy(),
    )


@signals.worker_init.connect
def _serve_run_metrics(**_) -> None:
    c = clients.get()  # made by shared.tasks' worker_init handler, connected before this one
    for gauge in run_metrics.gauges(c.history, c.lake, c.settings):
        REGISTRY.register(gauge)


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
        result = publish.publish(
            c.lake,
            ref.run_id,
            keys,
            c.settings.curated_versions_kept,
            partial(relevance, settings=c.settings, as_of=as_of(record)),
            c.history.erased_pseudonyms(),
            base_of(c, record),
            reviews_kept=c.settings.api_reviews_per_product,
        )
        version = result.version
        c.history.finish_run(ref.run_id, version.key, version.rows, result.fingerprint, result.changes.as_dict())
        publish.announce(c.redis, version)
        log.info("published", version=version.version, rows=version.rows, **result.changes.as_dict())
        changes = result.changes
        return BatchOutcome(changes.base_rows + changes.delta_rows, version.rows, version.key)

    return self.run_batch(ref, work).output_key


@app.task(name="publish.sweep")
def sweep_runs() -> list[str]:
    """Fired by beat: re-announce the work of runs that stopped moving."""
    c = clients.get()
    return sweep.sweep(c.history, send, c.settings.stalled_after_s)
