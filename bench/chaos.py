"""``make chaos``: one fault at a time during a real pipeline run, and what each one cost.

A supervised private stack (``Stack.supervise``, as ``reviews stack up``: a killed component comes
back by itself) on the first N reviews of the shared data. A baseline run publishes a first
version; then one full run per fault, each fault injected mid-run: ``kill -9`` of each worker kind
while it holds a batch, of the API under wrk's load, of Redis, PostgreSQL (metadata and source in
one server), the MongoDB-wire server; the S3 server refusing connections for a while (moto keeps
the lake in memory: a restart would empty it, so it closes its socket instead, ops/stack/s3_server.py).

Per fault: reviews lost and duplicated in the curated version, archive documents against source
rows, the API polled all along (errors counted; the previous version served until the new one),
seconds from the fault to the component answering again, to the run moving again (the next batch
finished: of the killed worker's stage, or of any stage for a server) and to the run's end.

    .venv/bin/python -m bench.chaos [--reviews 1500] [--batch-size 150] [--only redis,classify]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pymongo

from bench import source_ops
from bench.api_bench import wait_for_version
from bench.pipeline_bench import DATA_DIR, wait_for_archive
from ops.runs_cli import watch
from ops.source.schema import create_source
from ops.stack.components import Context
from ops.stack.manager import Stack, make_state_dir, read_restarts, stack_settings
from shared import clients
from shared.clients import Clients
from shared.flow import start_run
from shared.logs import configure_logging
from shared.settings import Settings
from shared.stages import Stage
from shared.tasks import send

WRK = shutil.which("wrk") or "/usr/bin/wrk"
RUN_TIMEOUT_S = 20 * 60
S3_OUTAGE_S = 30.0
ARCHIVE_GRACE_S = 120.0  # after the run's end, for the archive to catch up before the next row
API_LOAD_S, API_KILL_AFTER_S = 30.0, 5.0


@dataclass(frozen=True)
class Fault:
    key: str  # for --only
    name: str  # the table's row
    component: str
    stage: Stage | None = None  # a worker: killed while it holds a batch of this stage


FAULTS = [
    *(Fault(s.value, f"kill -9 {s.value} worker mid-batch", f"worker-{s.value}-1", s) for s in Stage),
    Fault("api", "kill -9 API under wrk load", "api"),
    Fault("redis", "kill -9 Redis", "redis"),
    Fault("postgres", "kill -9 PostgreSQL (metadata + source)", "postgres"),
    Fault("mongo", "kill -9 MongoDB-wire server", "mongo"),
    Fault("s3", f"S3 refuses connections {S3_OUTAGE_S:.0f} s", "s3"),
]


# --- the accounting (plain functions: tests/bench/test_chaos.py) -------------------------------------


@dataclass(frozen=True)
class Reviews:
    lost: int  # valid source reviews missing from the curated version
    duplicated: int  # curated rows beyond one per review
    foreign: int  # curated reviews the source does not hold


def account(source_ids: list[int], rejected: int, curated_ids: list[int]) -> Reviews:
    """``rejected``: source reviews the transform refused (counted by the run, not lost)."""
    source, curated = set(source_ids), set(curated_ids)
    return Reviews(
        lost=len(source) - rejected - len(curated & source),
        duplicated=len(curated_ids) - len(curated),
        foreign=len(curated - source),
    )


@dataclass(frozen=True)
class Sample:
    at: float  # epoch seconds
    ok: bool  # the data request answered 200
    version: str | None  # what /health/ready named, None when it did not answer


def previous_served(samples: list[Sample], previous: str, new: str) -> bool:
    """Every answer named the previous version until the new one, and never went back to it."""
    named = [s.version for s in samples if s.version is not None]
    if not named or set(named) - {previous, new}:
        return False
    first_new = named.index(new) if new in named else len(named)
    return all(v == new for v in named[first_new:])


def first_after(fault_at: datetime, finished: list[datetime]) -> float | None:
    """Seconds from the fault to the first of ``finished`` after it."""
    later = [t for t in finished if t > fault_at]
    return (min(later) - fault_at).total_seconds() if later else None


@dataclass
class Row:
    fault: str
    run_status: str = ""
    mid_batch: str = ""  # what the fault hit
    back_s: float | None = None  # the component answering again
    moving_s: float | None = None
    end_s: float | None = None
    reviews: Reviews | None = None
    archived: int = 0  # documents this run wrote
    archive_total: int = 0
    source_rows: int = 0
    requests: int = 0
    errors: int = 0
    served: bool = False
    restarts: str = ""
    wrk: tuple[int, int] | None = None  # the API row's load: answers, failures (a refused connect each)


def _s(value: float | None) -> str:
    return "—" if value is None else f"{value:,.1f}"


def table(rows: list[Row]) -> str:
    lines = [
        "| fault | hit | run | back, s | moving again, s | to run end, s | lost | duplicated "
        "| archived by the run / source (all) | previous version served | API errors / requests | supervisor |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lost = "—" if r.reviews is None else str(r.reviews.lost + r.reviews.foreign)
        dup = "—" if r.reviews is None else str(r.reviews.duplicated)
        wrk = f"; wrk: {r.wrk[0]:,} answered, {r.wrk[1]:,} failed" if r.wrk else ""
        lines.append(
            f"| {r.fault} | {r.mid_batch} | {r.run_status} | {_s(r.back_s)} | {_s(r.moving_s)} | {_s(r.end_s)} "
            f"| {lost} | {dup} | {r.archived:,} / {r.source_rows:,} ({r.archive_total:,}) "
            f"| {'yes' if r.served else 'NO'} "
            f"| {r.errors} / {r.requests}{wrk} | {r.restarts} |"
        )
    return "\n".join(lines)


# --- the run under a fault -------------------------------------------------------------------------


class Poller:
    """The API asked all along: a data request and the served version, every 0.2 s."""

    def __init__(self, settings: Settings, product: str):
        self.base = f"http://127.0.0.1:{settings.api_port}"
        self.product = product
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        with httpx.Client(timeout=2.0) as http:
            while not self._stop.wait(0.2):
                try:
                    ok = http.get(f"{self.base}/reviews/{self.product}/top").status_code == 200
                except httpx.HTTPError:
                    ok = False
                try:
                    version = http.get(f"{self.base}/health/ready").json().get("version")
                except (httpx.HTTPError, ValueError):
                    version = None
                self.samples.append(Sample(time.time(), ok, version))

    def __enter__(self) -> Poller:
        self._thread.start()
        return self

    def __exit__(self, *_) -> None:
        self._stop.set()
        self._thread.join()


def _pid(ctx: Context, name: str) -> int:
    record = ctx.pidfile(name).live()
    if record is None:
        raise RuntimeError(f"{name} is not running")
    return record.pid


def _wait(condition: Callable[[], object], timeout_s: float, every_s: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every_s)
    return False


def _statuses(c: Clients, run_id: str, stage: Stage) -> list[str]:
    return [b["status"] for b in c.history.batches(run_id, stage)]


def _when_to_strike(c: Clients, run_id: str, fault: Fault) -> str:
    """Wait for the moment the fault is meant for; say what it hit."""
    if fault.stage is Stage.EXTRACT:
        hit = _wait(lambda: "succeeded" in _statuses(c, run_id, Stage.EXTRACT), 120)
        return "extraction under way" if hit else "timed out waiting"
    if fault.stage is not None:
        hit = _wait(lambda: "running" in _statuses(c, run_id, fault.stage), 300)
        return f"a {fault.stage.value} batch running" if hit else "no batch seen running"
    hit = _wait(lambda: _statuses(c, run_id, Stage.CLASSIFY).count("succeeded") >= 2, 300, 0.2)
    return "mid-run (2 classify batches done)" if hit else "timed out waiting"


def _wrk(url: str, seconds: float) -> tuple[int, int]:
    """wrk's answered requests and its failures: socket errors (while the API is down, each refused
    connect of its reconnect loop is one) and non-2xx answers."""
    out = subprocess.run(
        [WRK, "-t1", "-c20", f"-d{seconds:.0f}s", "--timeout", "2s", url],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    ).stdout
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return requests, errors + (int(non_2xx.group(1)) if non_2xx else 0)


def _answering(stack: Stack, name: str) -> bool:
    try:
        next(c for c in stack.components if c.name == name).ping(stack.ctx)
    except Exception:  # noqa: BLE001 - not answering, whatever the reason
        return False
    return True


def strike(stack: Stack, fault: Fault, row: Row, product: str) -> datetime:
    """Inject the fault; returns when. The API row also loads the API with wrk, counting its errors."""
    ctx = stack.ctx
    at = datetime.now(UTC)
    if fault.key == "s3":
        pid = _pid(ctx, "s3")
        os.kill(pid, signal.SIGUSR1)
        time.sleep(1.0)
        try:
            socket.create_connection(("127.0.0.1", ctx.settings.s3_endpoint_port), timeout=2).close()
            row.mid_batch += "; S3 still accepted connections"
        except ConnectionRefusedError:
            row.mid_batch += "; connections refused"
        time.sleep(S3_OUTAGE_S - 1.0)
        os.kill(pid, signal.SIGUSR2)
        return at
    if fault.key == "api":
        url = f"http://127.0.0.1:{ctx.settings.api_port}/reviews/{product}/top"

        def load_api() -> None:
            row.wrk = _wrk(url, API_LOAD_S)

        load = threading.Thread(target=load_api)
        load.start()
        time.sleep(API_KILL_AFTER_S)
        at = datetime.now(UTC)
        os.kill(_pid(ctx, "api"), signal.SIGKILL)
        load.join()
        return at
    os.kill(_pid(ctx, fault.component), signal.SIGKILL)
    return at


def run_with(c: Clients, stack: Stack, fault: Fault | None, product: str, previous: str | None) -> Row:
    row = Row(fault.name if fault else "none (baseline)")
    started = time.time()
    with Poller(c.settings, product) as poller:
        run_id = start_run(c.history, send, "cli", {"full": True})
        at = None
        if fault is not None:
            row.mid_batch = _when_to_strike(c, run_id, fault)
            at = strike(stack, fault, row, product)
            print(f"{fault.key}: struck at {at:%H:%M:%S} ({row.mid_batch})", file=sys.stderr, flush=True)
            _wait(lambda: _answering(stack, fault.component), 300, 0.5)
            row.back_s = (datetime.now(UTC) - at).total_seconds()
        run = watch(c.history, run_id, RUN_TIMEOUT_S, interval_s=0.5)
        row.run_status = run["status"]
        if run["status"] == "succeeded":
            wait_for_version(f"http://127.0.0.1:{c.settings.api_port}", run_id, timeout_s=300)
            try:  # archive does not gate publish: a batch it lost after the run's end is the sweep's blind spot
                wait_for_archive(c.history, run, ARCHIVE_GRACE_S)
            except TimeoutError:
                row.mid_batch += f"; archive unfinished {ARCHIVE_GRACE_S:.0f} s after the run"
    ended = run["finished_at"] or datetime.now(UTC)
    if at is not None:
        batches = c.history.batches(run_id, fault.stage)
        row.moving_s = first_after(at, [b["finished_at"] for b in batches if b["finished_at"]])
        row.end_s = (ended - at).total_seconds()
        restarts = read_restarts(stack.ctx).get(fault.component)
        row.restarts = f"{restarts.count}x: {restarts.reason}" if restarts and restarts.count else "—"
    else:
        row.end_s = (ended - datetime.fromtimestamp(started, UTC)).total_seconds()
    if previous is not None:  # the baseline has nothing to serve before it
        window = poller.samples
        row.requests, row.errors = len(window), sum(not s.ok for s in window)
        row.served = previous_served(window, previous, run_id)
    else:
        row.served = True
    row.source_rows = len(ids := source_ops.ids(c.settings))
    with pymongo.MongoClient(c.settings.mongo_url) as mongo:
        archive = mongo[c.settings.mongo_db][c.settings.mongo_collection]
        row.archived = archive.count_documents({"run_id": run_id})  # what this run archived (upserts by id)
        row.archive_total = archive.count_documents({})
    if run["status"] == "succeeded":
        curated = c.lake.get_table(run["curated_key"]).column("review_id").to_pylist()
        rejects = c.history.stage_summary(run_id)["transform"]["rejects"]
        row.reviews = account(ids, rejects, curated)
    print(table([row]).splitlines()[-1], file=sys.stderr, flush=True)
    return row


def report(rows: list[Row], args: argparse.Namespace, cpu: str, settings: Settings) -> str:
    return "\n".join(
        [
            f"`make chaos` (`.venv/bin/python -m bench.chaos --reviews {args.reviews} --batch-size "
            f"{args.batch_size}`): one full run of the first {args.reviews:,} shared reviews per fault, batches "
            f"of {args.batch_size}, on a stack under its supervisor. CPU: {cpu}, {os.cpu_count()} cores.",
            "",
            table(rows),
            "",
            "*hit*: what the fault met. *back*: the component answering again (the supervisor restarts it after "
            "1 s). *moving again*: the next batch finished after the fault (of the killed worker's stage, any "
            "stage for a server). *lost* counts valid reviews missing from the curated version (rejects are "
            "counted by the run). *previous version served*: every answer of `/health/ready` named the last "
            "published version until the run's own. *API errors*: failed answers to a polled data request "
            "(every 0.2 s); in the API row also wrk's (20 connections for "
            f"{API_LOAD_S:.0f} s, the kill {API_KILL_AFTER_S:.0f} s in; a refused connection counts at each retry).",
            "A worker's held batch comes back through its lease (shared/leases.py): announced again by the lease "
            f"check within LEASE_S + LEASE_CHECK_EVERY_S of the kill ({settings.lease_s:.0f} + "
            f"{settings.lease_check_every_s:.0f} s here, the defaults); the sweep runs at production's settings "
            f"(STALLED_AFTER_S={settings.stalled_after_s:.0f}, SWEEP_EVERY_S={settings.sweep_every_s:.0f}). The suite "
            f"waits {ARCHIVE_GRACE_S:.0f} s for the archive after each run (archive does not gate publish) and says "
            "so in *hit* when it is still behind.",
        ]
    )


def cpu_name() -> str:
    text = Path("/proc/cpuinfo").read_text()
    model = re.search(r"model name\s*:\s*(.+)", text)
    flags = sorted(set(re.findall(r"\bamx\w*|avx512_bf16\b", text)))
    return f"{model.group(1).strip() if model else 'unknown'} ({', '.join(flags) or 'AVX2 only'})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA_DIR)
    parser.add_argument("--reviews", type=int, default=1500)
    parser.add_argument("--batch-size", type=int, default=150)
    parser.add_argument("--only", default="", help=f"comma-separated, of {', '.join(f.key for f in FAULTS)}")
    args = parser.parse_args(argv)
    only = {x for x in args.only.split(",") if x}
    faults = [f for f in FAULTS if not only or f.key in only]
    root = make_state_dir("reviews-chaos-")
    settings = stack_settings(
        root,
        watermark_lag_s=0.0,
        batch_size=args.batch_size,
    )
    stack = Stack(settings)
    rows: list[Row] = []
    try:
        stack.supervise()
        configure_logging(settings, quiet=True)
        c = clients.init_operator(settings)
        try:
            create_source(settings)
            source_ops.timed_load(settings, [args.data])
            source_ops.keep_first(settings, args.reviews)
            baseline = run_with(c, stack, None, "", None)
            rows.append(baseline)
            latest = c.lake.latest()
            product = c.lake.get_table(latest.key).column("product_id")[0].as_py()
            previous = latest.version
            for fault in faults:
                rows.append(run_with(c, stack, fault, product, previous))
                previous = c.lake.latest().version
        finally:
            clients.close()
    finally:
        stack.down()
        shutil.rmtree(root, ignore_errors=True)
    print(report(rows, args, cpu_name(), settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
