"""Workers' heartbeats in the run history: which stages have a live worker, knowable to the API without a broker.

Each worker records a row (its name, stage, host, pid, start) from a daemon thread every ``HEARTBEAT_EVERY_S``,
as leases are renewed (shared/leases.py), on a connection of its own: the thread starts in the worker's main
process once its pool has forked, and a connection shared with a forked child would mix their queries. Beat holds
no database credential: it is seen through the lease check it sends every ``LEASE_CHECK_EVERY_S`` (the publish
worker records it on receipt), so a publish worker busy for longer than the bound makes beat read stale too.

A worker is stale when its last heartbeat is older than ``STALE_AFTER_BEATS`` periods (the longer of the two):
two missed beats (a database blip) are not a death. Why not Celery's own heartbeats: the API has no broker
credential, and reading them takes an event receiver of its own.
"""

from __future__ import annotations

import os
import socket
import threading
from datetime import UTC, datetime

import structlog

from shared.history import History
from shared.settings import Settings

log = structlog.get_logger()

BEAT = "beat"  # beat's name and stage in the heartbeat rows
STALE_AFTER_BEATS = 3


def stale_after_s(settings: Settings) -> float:
    """A heartbeat older than this says its worker is gone."""
    return STALE_AFTER_BEATS * max(settings.heartbeat_every_s, settings.lease_check_every_s)


def beat_seen(history: History) -> None:
    """Beat sent the lease check this worker just received: it is alive (its host and pid are not known here)."""
    history.record_heartbeat(BEAT, BEAT, None, None, None)


class Heartbeat:
    """A daemon thread recording ``worker`` of ``stage`` alive every ``every_s``, the first time at once."""

    def __init__(self, dsn: str, worker: str, stage: str, every_s: float):
        self._history = History(dsn, keep_connections=1)
        self._row = (worker, stage, socket.gethostname(), os.getpid(), datetime.now(UTC))
        self._every_s = every_s
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="heartbeat", daemon=True)

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=1)
        self._history.close()

    def _beat(self) -> None:
        while True:
            try:
                self._history.record_heartbeat(*self._row)
            except Exception as exc:  # noqa: BLE001 - the database away: the next beat tries again
                log.warning("heartbeat_not_recorded", error=repr(exc))
            if self._stopped.wait(self._every_s):
                return
