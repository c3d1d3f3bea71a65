"""Run history in the pipeline's own PostgreSQL metadata database (as Airflow keeps its own).

A *run* has an id, a trigger, parameters and a status; each stage records one
row per batch (status, attempts, timings, rows in/out, rejects, last error).
Celery's result backend expires results and is not history: this is.
"""

from __future__ import annotations

from shared.history.audit import Audit
from shared.history.batches import Batches
from shared.history.connections import Connections
from shared.history.erasure import Erasures
from shared.history.runs import Runs
from shared.history.stats import Stats
from shared.history.workers import Workers


class History(Runs, Batches, Erasures, Stats, Audit, Workers):
    """Reads and writes run history, through connections made once per process and kept (``Connections``)."""

    def __init__(self, dsn: str, keep_connections: int = 4):
        self._pool = Connections(dsn, keep_connections)

    def close(self) -> None:
        self._pool.close()


__all__ = ["History"]
