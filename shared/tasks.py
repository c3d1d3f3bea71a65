"""What every stage's Celery task shares: batch references, leases, retries, failure bookkeeping.

A task unpacks a ``BatchRef``, calls its stage's plain function through
``StageTask.run_batch`` and announces the next stage as its last line, so a
consumer never receives a key whose object is not written yet. Bookkeeping in
the run history happens here, once, instead of try/except copies in every task;
so do the log context (run_id, stage, batch, task_id on every line a task logs)
and the worker's metrics.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import botocore.exceptions
import psycopg2
import pymongo.errors
import redis.exceptions
import structlog
from celery import Task, signals
from celery.exceptions import Ignore

from shared import clients, worker_metrics
from shared.celery_app import app
from shared.flow import BatchRef, sender
from shared.heartbeats import Heartbeat
from shared.history import History
from shared.history.batches import BatchStart
from shared.leases import Renewal
from shared.plan import Watermark
from shared.settings import STAGE_SECRETS, Settings, get_settings
from shared.stages import Stage

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
class BatchOutcome:
    rows_in: int
    rows_out: int
    output_key: str
    rejects: int = 0


def record_batch(
    history: History, stage: Stage, run_id: str, batch: int, outcome: BatchOutcome, cursor: Watermark | None = None
) -> None:
    """A batch is done: in the run history, the worker's metrics and the log (``cursor``: extract's resume point)."""
    history.finish_batch(
        run_id,
        stage,
        batch,
        rows_in=outcome.rows_in,
        rows_out=outcome.rows_out,
        rejects=outcome.rejects,
        output_key=outcome.output_key,
        cursor=cursor,
    )
    worker_metrics.record_batch(stage.value, outcome.rows_in, outcome.rows_out, outcome.rejects)
    log.info("batch_done", batch=batch, rows_in=outcome.rows_in, rows_out=outcome.rows_out, rejects=outcome.rejects)


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
        with self.holding(ref) as start:
            if start.already_done:
                done = next(
                    b for b in clients.get().history.batches(ref.run_id, self.stage) if b["batch_no"] == ref.batch
                )
                log.info("batch_already_done", status=done["status"])
                return BatchOutcome(done["rows_in"] or 0, done["rows_out"] or 0, done["output_key"] or "")
            outcome = work()
        record_batch(clients.get().history, self.stage, ref.run_id, ref.batch, outcome)
        return outcome

    @contextmanager
    def holding(self, ref: BatchRef) -> Iterator[BatchStart]:
        """Hold ``ref``'s batch under a lease renewed while the block works (``shared.leases``).

        A delivery of a batch that a live worker holds ends here, acknowledged and doing nothing (Celery's
        ``Ignore``): that worker announces what follows, and should it die, the lease check announces the
        batch again. The lease is released when the block raises (its retry or failure is recorded next).
        """
        c = clients.get()
        start = c.history.begin_batch(
            ref.run_id,
            self.stage,
            ref.batch,
            c.settings.max_batch_attempts,
            input_key=ref.key,
            worker=self.request.hostname,
            pid=os.getpid(),
            lease_s=c.settings.lease_s,
        )
        if start.held:
            log.info("batch_held_elsewhere", holder=start.held)
            raise Ignore()
        if start.already_done:
            yield start
            return
        renewal = Renewal(c.history, self.stage, ref.run_id, ref.batch, start.attempts, c.settings.lease_s).start()
        try:
            yield start
        except BaseException:
            renewal.stop()
            with _bookkeeping("release_lease"):
                c.history.release_lease(ref.run_id, self.stage, ref.batch, start.attempts)
            raise
        renewal.stop()

    @staticmethod
    def _ref(args: tuple, kwargs: dict) -> BatchRef | None:
        message = args[0] if args else kwargs.get("ref")
        return BatchRef(**message) if isinstance(message, dict) else None

    def on_retry(self, exc, task_id, args, kwargs, einfo) -> None:
        ref = self._ref(args, kwargs)
        log.warning("batch_retry", error=repr(exc), retries=self.request.retries)
        worker_metrics.RETRIES.labels(self.stage.value).inc()
        if ref is not None:
            with _bookkeeping("retry_batch"):
                clients.get().history.retry_batch(ref.run_id, self.stage, ref.batch, repr(exc))
        _count_connection_error(exc)

    def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:
        ref = self._ref(args, kwargs)
        log.error("batch_failed", error=repr(exc))
        _count_connection_error(exc)
        if ref is None:
            return
        history = clients.get().history
        with _bookkeeping("kill_batch"):
            history.kill_batch(ref.run_id, self.stage, ref.batch, repr(exc))
            if self.stage is not Stage.ARCHIVE:  # a missing archive never blocks the storefront
                history.fail_run(ref.run_id, f"{self.stage.value} batch {ref.batch} failed: {exc!r}")


@contextmanager
def _bookkeeping(what: str) -> Iterator[None]:
    """Failure bookkeeping never raises: an error in Celery's on_retry/on_failure wedges the worker's
    pool slot for good (the task stays "active" forever). When the run history is unreachable the
    record is lost, the run stays "running", and the sweep repairs it once the database is back."""
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - whatever it is, the worker must go on
        log.error("bookkeeping_failed", what=what, error=repr(exc))


def _count_connection_error(exc: BaseException) -> None:
    target = worker_metrics.connection_target(exc)
    if target is None:
        return
    try:
        worker_metrics.record_connection_error(clients.get().redis, target)
    except redis.exceptions.RedisError as err:  # never at the cost of the retry's own bookkeeping
        log.warning("connection_error_not_counted", target=target, error=repr(err))


def _stage_of(task: Task) -> str:
    return str(getattr(task, "stage", "celery"))  # every task of ours carries its stage; Celery's own do not


# Start times of the tasks this process runs, by task id (the pool may run several at once).
_started: dict[str, float] = {}


@signals.task_prerun.connect
def _task_context(task_id: str, task: Task, args: tuple, kwargs: dict, **_) -> None:
    context = {"task_id": task_id, "stage": _stage_of(task)}
    ref = StageTask._ref(args, kwargs)
    if ref is not None:
        context.update(run_id=ref.run_id, batch=ref.batch)
    # Bound until postrun, which Celery sends after on_retry/on_failure: their lines carry it too.
    structlog.contextvars.bind_contextvars(**context)
    _started[task_id] = time.perf_counter()


@signals.task_postrun.connect
def _task_done(task_id: str, task: Task, state: str | None = None, **_) -> None:
    started = _started.pop(task_id, None)
    if started is not None:
        outcome = (state or "unknown").lower()
        worker_metrics.TASK_SECONDS.labels(_stage_of(task), task.name, outcome).observe(time.perf_counter() - started)
    structlog.contextvars.clear_contextvars()


@signals.worker_init.connect
def _init_worker_clients(sender, **_) -> None:
    # The worker's queues are its stages (-Q): it refuses to start without their secrets, as the API does.
    queues = sender.app.amqp.queues.consume_from
    require_stage_secrets(get_settings(), queues)
    clients.init_stage(get_settings(), worker_stage(queues), celery=sender.app)
    worker_metrics.serve(get_settings())


def require_stage_secrets(settings: Settings, queues: Iterable[str]) -> None:
    """Refuse (UnsafeSecrets) a worker of these queues' stages that lacks a secret they use."""
    settings.require_secrets({name for queue in queues for name in STAGE_SECRETS[Stage(queue)]})


def worker_stage(queues: Iterable[str]) -> Stage:
    """The one stage a worker serves: the lake's identity it holds is that stage's, limited to its zones."""
    stages = {Stage(queue) for queue in queues}
    if len(stages) != 1:
        raise ValueError(f"a worker serves one stage's queue (-Q), not {sorted(stages)}: each has its own S3 identity")
    return stages.pop()


_heartbeat: Heartbeat | None = None


@signals.worker_ready.connect
def _start_heartbeat(sender, **_) -> None:
    # Once the pool has forked: the thread and its connection stay in this, the main, process.
    global _heartbeat
    c = clients.get()
    stage = worker_stage(sender.app.amqp.queues.consume_from)
    _heartbeat = Heartbeat(c.settings.worker_metadata_dsn, sender.hostname, stage.value, c.settings.heartbeat_every_s)
    _heartbeat.start()


@signals.worker_shutdown.connect
def _close_worker_clients(**_) -> None:
    if _heartbeat is not None:
        _heartbeat.stop()
    clients.close()


def stage_task(stage: Stage, name: str | None = None, **options) -> Callable:
    """Register a ``StageTask`` of ``stage``: its work (``Stage.task``) unless ``name`` says another of its tasks.
    Every task carries its stage: the log context and the metrics read it."""
    return app.task(name=name or stage.task, bind=True, base=StageTask, stage=stage, **options)


def send(task_name: str, ref: BatchRef) -> None:
    """Announce ``ref`` to the stage behind ``task_name``: by name, so no stage imports another."""
    sender(clients.get().celery)(task_name, ref)


def publish_if_complete(run_id: str) -> bool:
    """Fire ``publish`` for the run if this caller is the one that completes the barrier."""
    if clients.get().history.claim_publish(run_id):
        send(Stage.PUBLISH.task, BatchRef(run_id, 0, ""))
        return True
    return False
