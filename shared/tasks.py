"""What every stage's Celery task shares: batch references, retries, failure bookkeeping.

A task unpacks a ``BatchRef``, calls its stage's plain function through
``StageTask.run_batch`` and announces the next stage as its last line, so a
consumer never receives a key whose object is not written yet. Bookkeeping in
the run history happens here, once, instead of try/except copies in every task.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import botocore.exceptions
import psycopg2
import pymongo.errors
import redis.exceptions
import structlog
from celery import Task, signals

from shared import clients
from shared.history import Stage
from shared.logs import configure_logging
from shared.settings import get_settings

log = structlog.get_logger()

# Errors that can pass on a later try: a server down or restarting, a network blip.
# Anything else (bad data, a bug) is permanent: recorded and not retried, since the
# same input would fail the same way.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionError,
    TimeoutError,
    botocore.exceptions.ConnectionError,
    botocore.exceptions.HTTPClientError,
    psycopg2.OperationalError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    pymongo.errors.ConnectionFailure,
)
RETRY_BACKOFF_MAX_S = 300


def retries_within(seconds: int) -> int:
    """How many retries, backing off 1, 2, 4 ... s (capped at RETRY_BACKOFF_MAX_S), span ``seconds``."""
    waited, retries = 0, 0
    while waited < seconds:
        waited += min(2**retries, RETRY_BACKOFF_MAX_S)
        retries += 1
    return retries


@dataclass(frozen=True)
class BatchRef:
    """All that crosses the broker: which run, which batch, which object to read."""

    run_id: str
    batch: int
    key: str

    def as_message(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class BatchOutcome:
    rows_in: int
    rows_out: int
    output_key: str
    rejects: int = 0


class StageTask(Task):
    """Base of every stage task: transient errors retry with backoff, the rest is recorded."""

    abstract = True
    stage: Stage
    autoretry_for = TRANSIENT_ERRORS
    retry_backoff = True
    retry_backoff_max = RETRY_BACKOFF_MAX_S
    retry_jitter = True
    max_retries = retries_within(600)

    def run_batch(self, ref: BatchRef, work: Callable[[], BatchOutcome]) -> BatchOutcome:
        """Do ``work`` for one batch once; a redelivery of finished work returns its outcome."""
        c = clients.get()
        structlog.contextvars.bind_contextvars(
            run_id=ref.run_id, stage=self.stage.value, batch=ref.batch, task_id=self.request.id
        )
        try:
            start = c.history.begin_batch(
                ref.run_id, self.stage, ref.batch, c.settings.max_batch_attempts,
                input_key=ref.key, worker=self.request.hostname,
            )  # fmt: skip
            if start.already_done:
                done = next(b for b in c.history.batches(ref.run_id, self.stage) if b["batch_no"] == ref.batch)
                log.info("batch_already_done", status=done["status"])
                return BatchOutcome(done["rows_in"] or 0, done["rows_out"] or 0, done["output_key"] or "")
            outcome = work()
            c.history.finish_batch(
                ref.run_id, self.stage, ref.batch, rows_in=outcome.rows_in, rows_out=outcome.rows_out,
                rejects=outcome.rejects, output_key=outcome.output_key,
            )  # fmt: skip
            log.info("batch_done", rows_in=outcome.rows_in, rows_out=outcome.rows_out, rejects=outcome.rejects)
            return outcome
        finally:
            structlog.contextvars.clear_contextvars()

    @staticmethod
    def _ref(args: tuple, kwargs: dict) -> BatchRef | None:
        message = args[0] if args else kwargs.get("ref")
        return BatchRef(**message) if isinstance(message, dict) else None

    def on_retry(self, exc, task_id, args, kwargs, einfo) -> None:
        ref = self._ref(args, kwargs)
        log.warning("batch_retry", stage=self.stage.value, error=repr(exc), retries=self.request.retries)
        if ref is not None:
            clients.get().history.retry_batch(ref.run_id, self.stage, ref.batch, repr(exc))

    def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:
        ref = self._ref(args, kwargs)
        log.error("batch_failed", stage=self.stage.value, error=repr(exc))
        if ref is None:
            return
        history = clients.get().history
        history.kill_batch(ref.run_id, self.stage, ref.batch, repr(exc))
        if self.stage is not Stage.ARCHIVE:  # a missing archive never blocks the storefront
            history.fail_run(ref.run_id, f"{self.stage.value} batch {ref.batch} failed: {exc!r}")


@signals.setup_logging.connect
def _configure_worker_logging(**_) -> None:
    # Connected, so Celery leaves the root logger to us instead of hijacking it.
    configure_logging(get_settings())


@signals.worker_init.connect
def _init_worker_clients(sender, **_) -> None:
    clients.init(get_settings(), celery=sender.app)


@signals.worker_shutdown.connect
def _close_worker_clients(**_) -> None:
    clients.close()


def send(task_name: str, ref: BatchRef) -> None:
    """Announce ``ref`` to the stage behind ``task_name``: by name, so no stage imports another."""
    clients.get().celery.send_task(task_name, args=[ref.as_message()])


def publish_if_complete(run_id: str) -> bool:
    """Fire ``publish`` for the run if this caller is the one that completes the barrier."""
    if clients.get().history.claim_publish(run_id):
        send("publish.run", BatchRef(run_id, 0, ""))
        return True
    return False
