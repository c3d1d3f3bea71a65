"""The connections the run history uses, and the one transaction each of its calls runs in."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg2
import psycopg2.extensions
import psycopg2.extras


class Connections:
    """Connections to one database, made on first use and kept for the next call.

    Nothing connects before the first use, so a process starts while PostgreSQL restarts (its first
    task retries instead of the worker crashing). Connecting costs ~16 times a query (4.8 against
    0.3 ms, password auth included), so up to ``keep`` idle connections are kept; one is checked with a
    round trip before it is handed out, so a connection the server dropped (a restart) is replaced
    unseen rather than failing the call.
    """

    def __init__(self, dsn: str, keep: int):
        self._dsn, self._keep = dsn, keep
        self._idle: list[psycopg2.extensions.connection] = []
        self._lock = threading.Lock()

    def get(self) -> psycopg2.extensions.connection:
        while True:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                return psycopg2.connect(self._dsn)
            try:
                with conn.cursor() as cur:
                    cur.execute("SELECT 1")
                conn.rollback()
                return conn
            except psycopg2.Error:
                conn.close()

    def put(self, conn: psycopg2.extensions.connection) -> None:
        idle = not conn.closed and conn.info.transaction_status == psycopg2.extensions.TRANSACTION_STATUS_IDLE
        with self._lock:
            if idle and len(self._idle) < self._keep:
                self._idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


class Store:
    """What each part of the run history builds on: its calls run on the connections ``_pool`` keeps."""

    _pool: Connections

    @contextmanager
    def _cursor(self) -> Iterator[psycopg2.extras.RealDictCursor]:
        """One transaction. Not ``with conn``: on a connection the server dropped, its rollback raises
        InterfaceError ("connection already closed") in place of the OperationalError that says why, and
        turns a transient error, which a task retries, into a permanent one."""
        conn = self._pool.get()
        try:
            cur = conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor)
            yield cur
            cur.close()
            conn.commit()
        except BaseException:
            if not conn.closed:
                conn.rollback()
            raise
        finally:
            self._pool.put(conn)
