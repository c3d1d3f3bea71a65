"""Archive task: upsert a raw batch into MongoDB. MongoDB down delays it, never fails the run."""

from __future__ import annotations

import pymongo.errors
import structlog
from celery import signals
from prometheus_client import REGISTRY, Gauge

from services.archiver import archive
from shared import clients
from shared.pseudonym import without_erased_buyers
from shared.schemas import RAW
from shared.settings import get_settings
from shared.stages import Stage
from shared.tasks import BatchOutcome, BatchRef, retries_within, stage_task
from shared.worker_metrics import ScrapedGauge

log = structlog.get_logger()
_store: archive.ArchiveStore | None = None


# The archive trails the pipeline by design (MongoDB down only delays it): how far, read at each scrape.
BACKLOG = ScrapedGauge(
    "pipeline_archive_backlog_batches",
    "Extracted batches not archived yet (pending, running or retrying)",
    lambda: clients.get().history.archive_backlog(),
)
# Counted after each batch archived, not at each scrape: with MongoDB down, a scrape would wait on it.
ARCHIVED = Gauge("pipeline_archive_documents", "Reviews in the raw archive (MongoDB's estimate, after the last batch)")


@signals.worker_init.connect
def _open_store(**_) -> None:
    global _store
    _store = archive.ArchiveStore(get_settings())
    REGISTRY.register(BACKLOG)


def _count_archived() -> None:
    try:
        ARCHIVED.set(_store.count())
    except pymongo.errors.PyMongoError as exc:  # a metric, never at the cost of the batch
        log.warning("archive_not_counted", error=repr(exc))


@signals.worker_shutdown.connect
def _close_store(**_) -> None:
    if _store is not None:
        _store.close()


@stage_task(Stage.ARCHIVE, max_retries=retries_within(get_settings().archive_retry_for_s))
def archive_batch(self, ref: dict) -> int:
    ref = BatchRef(**ref)

    def work() -> BatchOutcome:
        c = clients.get()
        # Extract left out the buyers forgotten by then; one forgotten since (its archive deleted) stays out too.
        table = without_erased_buyers(
            c.lake.get_table(ref.key, RAW),
            c.history.erased_pseudonyms(),
            c.settings.pseudonym_key.get_secret_value().encode(),
        )
        archived = archive.run(_store, table, ref.run_id)
        _count_archived()
        return BatchOutcome(table.num_rows, archived, f"mongodb:{c.settings.mongo_db}.{c.settings.mongo_collection}")

    return self.run_batch(ref, work).rows_out
