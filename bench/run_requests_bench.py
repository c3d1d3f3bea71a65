"""From ``POST /jobs``'s request to its extraction on the broker: how long a run the API asks for waits for the
extract worker's claimer (shared/run_requests.py), on a private stack's real PostgreSQL and Redis.

Each request is made through the API's role (``History.request_run``, what the route calls) and timed until the
claimer, woken by NOTIFY, has put ``extract.run`` on the broker; the claimer polls once an hour here, so only the
notification can wake it. (Its fallback poll, or a periodic claim task, would add up to its period: 5 s.)

    .venv/bin/python -m bench.run_requests_bench [--requests 30]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import threading
import time
from datetime import date, timedelta

from ops.stack.manager import Stack, make_state_dir, stack_settings
from shared import clients
from shared.flow import BatchRef
from shared.history import History
from shared.history.schema import init_metadata_db
from shared.logs import configure_logging
from shared.run_requests import POLL_S, RequestListener, claim_all
from shared.stages import Stage
from shared.tasks import send


class TimedSend:
    """The worker's real send, noting when each run's extraction reached the broker."""

    def __init__(self):
        self.sent: dict[str, float] = {}
        self.changed = threading.Condition()

    def __call__(self, task: str, ref: BatchRef) -> None:
        send(task, ref)
        with self.changed:
            self.sent[ref.run_id] = time.perf_counter()
            self.changed.notify_all()

    def wait(self, run_id: str, timeout_s: float) -> float:
        with self.changed:
            if not self.changed.wait_for(lambda: run_id in self.sent, timeout_s):
                raise TimeoutError(f"{run_id} not sent within {timeout_s} s")
            return self.sent[run_id]


def latencies(settings, requests: int) -> list[float]:
    worker, api = History(settings.worker_metadata_dsn), History(settings.api_metadata_dsn)
    timed = TimedSend()
    listener = RequestListener(settings.worker_metadata_dsn, lambda: claim_all(worker, timed), poll_s=3600.0).start()
    try:
        time.sleep(1.0)  # listening
        found = []
        for n in range(requests):
            started = time.perf_counter()
            run_id = api.request_run({}, date(2001, 1, 1) + timedelta(days=n))
            found.append(timed.wait(run_id, 30) - started)
        return found
    finally:
        listener.stop()
        worker.close()
        api.close()


def row(name: str, values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return f"| {name} | {statistics.median(ms):.1f} | {min(ms):.1f}–{max(ms):.1f} | {len(ms)} |"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=30)
    args = parser.parse_args(argv)
    root = make_state_dir("reviews-bench-requests-")
    settings = stack_settings(root)
    configure_logging(settings, quiet=True)  # stdout is the report's
    try:
        Stack(settings, kinds=("server",)).up()
        init_metadata_db(settings)
        clients.init_stage(settings, Stage.EXTRACT)  # the extract worker's: it claims and sends
        notified = latencies(settings, args.requests)
    finally:
        clients.close()
        Stack(settings).down()
        shutil.rmtree(root, ignore_errors=True)
    print("Private servers (PostgreSQL 18, Redis 6.2); one claimer thread; requests one after another.\n")
    print("| figure, ms | median | min–max | requests |")
    print("|---|---|---|---|")
    print(row("`request_run` (the API's insert) to `extract.run` on the broker, claimer woken by NOTIFY", notified))
    print(f"\nWithout the notification the claimer's fallback poll would add up to {POLL_S:.0f} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
