"""What the API asks for, done by the worker that may: the API holds no broker credential and may not write the lake.

``POST /jobs``, ``POST /jobs/{id}/retry`` and ``POST /curated/rollback`` leave a row in ``run_request`` through the
functions of the API's metadata role (``request_run``, ``request_retry``, ``request_rollback`` in
shared/history/schema.py), beside the run they create, reopen or restore the version of. A request names a run and
nothing else: whatever the API writes, what the extract worker sends is the one extraction of a queued run, or the
announcements of what a retry cleared, read from the run history as the CLI's retry reads them
(``shared.recovery.announcements``); the publish worker serves again the version a successful run published. No
request can make a worker run a task of the API's choosing.

Woken by PostgreSQL LISTEN/NOTIFY (the functions notify at commit), in a thread of each extract (and publish)
worker: a run starts within milliseconds of the request, and nothing polls the broker. A beat task every few seconds
would put ~20,000 messages a day on the broker and in Flower to find mostly nothing, and wait up to its period. The
thread also claims every ``POLL_S`` for requests made while it was not listening (a restart, a lost connection).
``SELECT … FOR UPDATE SKIP LOCKED`` lets several extract workers claim side by side: each request is claimed once,
and sent before its claim commits, so a crash in between sends it again (the stages take a second delivery) rather
than never.
"""

from __future__ import annotations

import select
import threading
from collections.abc import Callable

import psycopg2
import structlog

from shared.flow import BatchRef, Send
from shared.history import History
from shared.recovery import announcements
from shared.stages import Stage

log = structlog.get_logger()

CHANNEL = "run_request"  # request_run, request_retry and request_rollback notify it
EXTRACT_KINDS = ("start", "retry")  # the extract worker sends them
ROLLBACK_KINDS = ("rollback",)  # the publish worker does it: it writes the pointer the API may only read
POLL_S = 5.0
RECONNECT_S = 2.0


def handle(history: History, send: Send, request: dict) -> list[str]:
    """Send what one request names; returns what it sent, for the log and the tests."""
    run_id = request["run_id"]
    run = history.get_run(run_id)
    if request["kind"] == "start":
        if run["status"] != "queued":  # started or ended meanwhile: nothing to send
            return []
        to_send = [(Stage.EXTRACT.task, BatchRef(run_id, 0, ""), "extract")]
    else:
        cleared = history.retried_at(run_id, request["requested_at"])
        # Publish only when this retry's own reopening claimed it, in the transaction that wrote the request.
        to_send = announcements(
            history, run_id, cleared, publish=run["publish_requested_at"] == request["requested_at"]
        )
    for task, ref, _ in to_send:
        send(task, ref)
    return [name for _, _, name in to_send]


def claim_all(history: History, send: Send) -> int:
    """The extract worker's claim: send every waiting start and retry; returns how many were claimed."""
    return claim_kinds(history, EXTRACT_KINDS, lambda request: handle(history, send, request))


def claim_kinds(history: History, kinds: tuple[str, ...], handler: Callable[[dict], list[str]]) -> int:
    """Claim every waiting request of ``kinds``, each done by ``handler`` (which returns what it did, for the
    log) before its claim commits; returns how many were claimed."""
    claimed = 0
    while history.claim_request(lambda r: _log(r, handler(r)), kinds) is not None:
        claimed += 1
    return claimed


def _log(request: dict, done: list[str]) -> None:
    log.info("run_request_claimed", run_id=request["run_id"], kind=request["kind"], done=done)


class RequestListener:
    """A daemon thread that calls ``claim`` when notified, and every ``poll_s`` besides, until ``stop``."""

    def __init__(self, dsn: str, claim: Callable[[], int], poll_s: float = POLL_S):
        self._dsn, self._claim, self._poll_s = dsn, claim, poll_s
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="run-requests", daemon=True)

    def start(self) -> RequestListener:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Not waiting out a wait for a notification: a claim cut short by the exit is claimed again later."""
        self._stopping.set()
        self._thread.join(timeout=1)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._listen()
            except Exception as exc:  # noqa: BLE001 - the database or the broker away: listen again shortly
                log.warning("run_requests_unavailable", error=repr(exc))
                self._stopping.wait(RECONNECT_S)

    def _listen(self) -> None:
        conn = psycopg2.connect(self._dsn)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(f"LISTEN {CHANNEL}")
            while not self._stopping.is_set():
                self._claim()  # first: what was requested while nobody listened
                if select.select([conn], [], [], self._poll_s) != ([], [], []):
                    conn.poll()
                    conn.notifies.clear()
        finally:
            conn.close()
