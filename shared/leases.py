"""Leases on batches: the worker working on a batch holds it, and renews the hold while it works.

A delivery that starts a batch (``History.begin_batch``) holds it until ``lease_until``, ``LEASE_S`` ahead,
and a thread beside the work renews it every third of that (``Renewal``). When the holder dies (``kill -9``,
an out-of-memory kill, a lost host), nobody renews: beat's lease check (``shared.recovery.reclaim``, every
``LEASE_CHECK_EVERY_S``) marks the batch ``lost`` and announces it again, with no wait for the broker's
``visibility_timeout`` (an hour) nor for the whole run to go quiet (the sweep). A delivery that finds the batch
held by a live worker (a slow batch, a duplicate message) leaves it to that worker.

Why a timestamp in the batch row, not Celery's worker heartbeats or ``inspect().active()``: the heartbeats say
which workers are alive but not which batch each holds, and binding the two takes a broadcast to every worker
(seconds on a busy machine, none answering during a broker outage) or an event receiver of its own; the batch
row is already where a delivery decides whether to work, where the sweep and the operator look, and one
indexed query finds what is lost. Both the renewal and the expiry use the database's clock: no skew between
hosts. The lease says the holder's process is alive, not that its work progresses: a task that hangs is
for time limits, not for leases. A holder cut off from the database for longer than ``LEASE_S`` loses its
lease while it works; its batch is then worked again beside it, which is harmless (every stage is idempotent)
and logged (``lease_lost``).
"""

from __future__ import annotations

import threading

import structlog

from shared.history import History
from shared.stages import Stage

log = structlog.get_logger()

# Renewals within one lease: two may fail (a database blip) before the lease runs out.
RENEWALS_PER_LEASE = 3


class Renewal:
    """A thread renewing one delivery's lease until ``stop``, or until it finds the lease no longer its own."""

    def __init__(self, history: History, stage: Stage, run_id: str, batch: int, attempt: int, lease_s: float):
        self._history, self._key, self._lease_s = history, (run_id, stage, batch, attempt), lease_s
        self._stopped = threading.Event()
        self._context = structlog.contextvars.get_contextvars()  # the task's log context, in the thread too
        self._thread = threading.Thread(target=self._renew, name=f"lease-{stage.value}-{batch}", daemon=True)

    def start(self) -> Renewal:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()

    def _renew(self) -> None:
        structlog.contextvars.bind_contextvars(**self._context)
        run_id, stage, batch, attempt = self._key
        while not self._stopped.wait(self._lease_s / RENEWALS_PER_LEASE):
            try:
                held = self._history.renew_lease(run_id, stage, batch, attempt, self._lease_s)
            except Exception as exc:  # noqa: BLE001 - a failed renewal is tried again at the next tick
                log.warning("lease_not_renewed", error=repr(exc))
                continue
            if not held:
                if not self._stopped.is_set():  # else the work just ended, and its record took the lease
                    log.warning("lease_lost", attempt=attempt)
                return
