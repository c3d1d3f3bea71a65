"""Classify task. The model loads once per worker process, at start, never per task:
a missing or corrupt model fails the worker's start with a clear message."""

from __future__ import annotations

import structlog
from celery import signals

from services.classifier import stage
from services.classifier.model import load_classifier
from shared import clients
from shared.celery_app import CLASSIFIER_FINGERPRINT_KEY
from shared.settings import get_settings
from shared.stages import Stage
from shared.tasks import BatchOutcome, BatchRef, publish_if_complete, stage_task

log = structlog.get_logger()
_classifier = None
_base_keys = stage.BaseKeys()


@signals.worker_init.connect
def _load_model(**_) -> None:
    global _classifier
    from transformers.utils import logging as transformers_logging

    # The worker's log is one JSON object per line: no progress bar while the weights load.
    transformers_logging.disable_progress_bar()
    _classifier = load_classifier(get_settings())


@signals.worker_ready.connect
def _announce_fingerprint(**_) -> None:
    # After worker_init, where the clients are made: the last worker to start names the classifier.
    clients.get().redis.set(CLASSIFIER_FINGERPRINT_KEY, _classifier.fingerprint)


@stage_task(Stage.CLASSIFY)
def classify_batch(self, ref: dict) -> int:
    ref = BatchRef(**ref)
    c = clients.get()

    def work() -> BatchOutcome:
        known = _base_keys.of(c.lake, c.history.get_run(ref.run_id)["base_version"])
        key, rows, carried = stage.run(c.lake, _classifier, ref.run_id, ref.batch, ref.key, known)
        log.info("batch_classified", rows=rows, classified=rows - carried, carried_over=carried)
        return BatchOutcome(rows, rows, key)

    outcome = self.run_batch(ref, work)
    publish_if_complete(ref.run_id)
    return outcome.rows_out
