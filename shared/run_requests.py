"""The runs the API asks for, sent to the broker by the extract worker: the API holds no broker credential.

``POST /jobs`` and ``POST /jobs/{id}/retry`` leave a row in ``run_request`` through the functions of the API's
metadata role (``request_run``, ``request_retry`` in shared/history/schema.py), beside the run they create or
reopen. A request names a run and nothing else: whatever the API writes, what is sent is the one extraction of
a queued run, or the announcements of what a retry cleared, read from the run history as the CLI's retry reads
them (``shared.recovery.announcements``). No request can make a worker run a task of the API's choosing.

Woken by PostgreSQL LISTEN/NOTIFY (the functions notify at commit), in a thread of each extract worker: a run
starts within milliseconds of the request, and nothing polls the broker. A beat task every few seconds would
put ~20,000 messages a day on the broker and in Flower to find mostly nothing, and wait up to its period. The
thread also claims every ``POLL_S`` for requests made while it was not listening (a restart, a lost
connection). ``SELECT … FOR UPDATE SKIP LOCKED`` lets several extract workers claim side by side: each
request is claimed once, and sent before its claim commits, so a crash in between sends it again (the stages
take a second delivery) rather than never.
"""

from __future__ import annotations

import select
import threading

import psycopg2
import structlog

from shared.flow import BatchRef, Send
from shared.history import History
from shared.recovery import announcements
from shared.stages import Stage

log = structlog.get_logger()

CHANNEL = "run_request"  # request_run and request_retry notify it
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
    """Claim and send every waiting request; returns how many were claimed."""
    claimed = 0
    while history.claim_request(lambda r: _log(r, handle(history, send, r))) is not None:
        claimed += 1
    return claimed


def _log(request: dict, sent: list[str]) -> None:
    log.info("run_request_claimed", run_id=request["run_id"], kind=request["kind"], sent=sent)


class RequestListener:
    """A daemon thread that claims requests when notified, and every ``poll_s`` besides, until ``stop``."""

    def __init__(self, dsn: str, history: History, send: Send, poll_s: float = POLL_S):
        self._dsn, self._history, self._send, self._poll_s = dsn, history, send, poll_s
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
                claim_all(self._history, self._send)  # first: what was requested while nobody listened
                if select.select([conn], [], [], self._poll_s) != ([], [], []):
                    conn.poll()
                    conn.notifies.clear()
        finally:
            conn.close()
