"""A run's publication, as the publish task does it: score every classified batch, merge with the base
version for an incremental run, write the curated version, record it and announce it."""

from __future__ import annotations

from functools import partial

import numpy as np
import structlog

from services.publisher import publish
from shared.clients import Clients
from shared.curated.versions import announce
from shared.lake import curated_key, live_ids_key
from shared.plan import as_of, plan_of
from shared.relevance import relevance
from shared.stages import Stage
from shared.tasks import BatchOutcome

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


def publish_run(c: Clients, run: dict) -> BatchOutcome:
    """Publish ``run`` (its history row): the curated version, its record in the run history, its announcement."""
    run_id = run["run_id"]
    keys = [b["output_key"] for b in c.history.batches(run_id, Stage.CLASSIFY) if b["status"] == "succeeded"]
    result = publish.publish(
        c.lake,
        run_id,
        keys,
        c.settings.curated_versions_kept,
        partial(relevance, settings=c.settings, as_of=as_of(run)),
        c.history.erased_pseudonyms(),
        base_of(c, run),
        reviews_kept=c.settings.api_reviews_per_product,
    )
    version, changes = result.version, result.changes
    c.history.finish_run(run_id, version.key, version.rows, result.fingerprint, changes.as_dict(), result.curated_bytes)
    announce(c.redis, version)
    log.info("published", version=version.version, rows=version.rows, **changes.as_dict())
    return BatchOutcome(changes.base_rows + changes.delta_rows, version.rows, version.key)
