"""``reviews history init``, ``reviews run`` and ``reviews runs``: trigger and watch pipeline runs."""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TextIO

from tqdm import tqdm

from shared import clients
from shared.flow import trigger_run
from shared.history import History
from shared.history.audit import cli_actor
from shared.history.runs import RunAlreadyActive
from shared.history.schema import init_metadata_db
from shared.plan import Watermark, plan_of, watermark_of
from shared.settings import get_settings
from shared.stages import Stage
from shared.tasks import send

DONE = ("succeeded", "failed")


@dataclass(frozen=True)
class StageProgress:
    """One stage of a run as the watcher shows it."""

    stage: Stage
    done: int
    total: int | None  # batches the stage will do; None while extraction has not counted them
    rows: int
    rejects: int
    retrying: int
    dead: int
    lost: int  # its worker died mid-batch: announced again, waiting for a worker
    started: bool
    finished: bool
    # The stage's own time: its first batch's start to its last batch's end, or to now while it works.
    elapsed_s: float

    def counts(self) -> str:
        return (
            f"{self.done}/{'?' if self.total is None else self.total} batches, rows {self.rows:,}, "
            f"rejects {self.rejects:,}, retrying {self.retrying}, dead {self.dead}"
            + (f", lost {self.lost}" if self.lost else "")
        )

    def line(self) -> str:
        state = "done" if self.finished else "working"
        return f"{self.stage.value:<9} {self.counts()}, {_duration(self.elapsed_s)} {state}"


def _duration(seconds: float) -> str:
    minutes, s = divmod(int(seconds), 60)
    return f"{minutes}m{s:02d}s" if minutes else f"{seconds:.1f}s"


def stage_progress(run: dict, summary: dict[str, dict], now: datetime) -> list[StageProgress]:
    """Every stage's progress from the run history, as of ``now``."""
    extracted = run["extracted_batches"]
    run_done = run["status"] in DONE
    progress = []
    for stage in Stage:
        s = summary.get(stage.value, {})
        total = 1 if stage is Stage.PUBLISH else extracted
        done, dead = s.get("succeeded", 0), s.get("dead", 0)
        idle = not any(s.get(k, 0) for k in ("running", "retrying", "lost"))
        finished = run_done or (total is not None and idle and done + dead >= total)
        first, last = s.get("first_started"), s.get("last_finished")
        end = (last or first) if finished else now
        progress.append(
            StageProgress(
                stage,
                done,
                total,
                s.get("rows_out", 0),
                s.get("rejects", 0),
                s.get("retrying", 0),
                dead,
                s.get("lost", 0),
                started=first is not None,
                finished=finished and first is not None,
                elapsed_s=max((end - first).total_seconds(), 0.0) if first else 0.0,
            )
        )
    return progress


class _Bars:
    """On a terminal: one bar per stage, redrawn in place."""

    def __init__(self, stream: TextIO):
        fmt = "{desc} {percentage:3.0f}%|{bar}| {postfix}"
        self._bars = {
            stage: tqdm(
                desc=f"{stage.value:<9}", position=i, leave=True, dynamic_ncols=True, file=stream, bar_format=fmt
            )
            for i, stage in enumerate(Stage)
        }

    def show(self, progress: list[StageProgress]) -> None:
        for p in progress:
            bar = self._bars[p.stage]
            bar.total, bar.n = p.total, p.done
            bar.set_postfix_str(f"{p.counts()}, {_duration(p.elapsed_s)}", refresh=False)
            bar.refresh()

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()


class _Lines:
    """Elsewhere (a log, CI): a stage's line when it changed, at most once per ``every_s``, and when it ends."""

    def __init__(self, stream: TextIO, every_s: float):
        self._stream, self._every_s = stream, every_s
        self._shown: dict[Stage, tuple[str, bool, float]] = {}  # what was printed, finished, when

    def show(self, progress: list[StageProgress]) -> None:
        now = time.monotonic()
        for p in progress:
            if not p.started:
                continue
            counts, shown = p.counts(), self._shown.get(p.stage)
            if shown is not None:
                last_counts, last_finished, at = shown
                if last_finished or (not p.finished and (counts == last_counts or now - at < self._every_s)):
                    continue
            print(p.line(), file=self._stream, flush=True)
            self._shown[p.stage] = (counts, p.finished, now)

    def close(self) -> None:
        pass


def watch(
    history: History,
    run_id: str,
    timeout_s: float | None = None,
    interval_s: float = 0.5,
    stream: TextIO | None = None,
    log_every_s: float = 5.0,
) -> dict:
    """Show each stage's progress until the run ends; returns the run's final record.

    On stderr (the report goes to stdout), by default. On a terminal, one bar per stage redrawn in
    place; otherwise (a log file, CI) plain lines, each stage's at most every ``log_every_s`` and only
    when it changed, so a log stays short.
    """
    stream = stream or sys.stderr
    display = _Bars(stream) if stream.isatty() else _Lines(stream, log_every_s)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    try:
        while True:
            run = history.get_run(run_id)
            display.show(stage_progress(run, history.stage_summary(run_id), datetime.now(UTC)))
            if run["status"] in DONE:
                return run
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"run {run_id} still {run['status']} after {timeout_s:.0f}s")
            time.sleep(interval_s)
    finally:
        display.close()


def format_report(run: dict, summary: dict[str, dict], lost: list[dict] = ()) -> str:
    """The run's outcome and its per-stage time split, as the run history recorded them; ``lost``: the
    deliveries whose worker died mid-batch (``History.lost_batches``)."""
    lines = [f"run {run['run_id']}: {run['status']}"]
    if run["error"]:
        lines.append(f"  error: {run['error']}")
    wall = (run["finished_at"] - run["started_at"]).total_seconds() if run["finished_at"] and run["started_at"] else 0
    lines.append(
        f"  source rows {run['source_rows']}, curated rows {run['curated_rows']}, "
        f"curated file {run['curated_key']}, end to end {wall:.1f}s"
    )
    lines.extend(_plan_lines(run))
    lines.append(
        f"  {'stage':<10}{'batches':>8}{'rows in':>9}{'rows out':>9}{'rejects':>8}{'attempts':>9}"
        f"{'busy s':>9}{'wall s':>8}  state"
    )
    for stage in Stage:
        s = summary.get(stage.value)
        if s is None:
            lines.append(f"  {stage.value:<10}{'-':>8}")
            continue
        span = (s["last_finished"] - s["first_started"]).total_seconds() if s["last_finished"] else 0.0
        state = ", ".join(f"{s[k]} {k}" for k in ("running", "retrying", "dead", "lost") if s[k]) or "done"
        lines.append(
            f"  {stage.value:<10}{s['succeeded']:>8}{s['rows_in']:>9}{s['rows_out']:>9}{s['rejects']:>8}"
            f"{s['attempts']:>9}{s['busy_s']:>9.1f}{span:>8.1f}  {state}"
        )
        if s["last_error"]:
            lines.append(f"      last error: {s['last_error'][:200]}")
    if lost:
        lines.append("  workers lost mid-batch:")
        lines.extend(f"    {_lost_line(b)}" for b in lost)
    return "\n".join(lines)


def _holder(worker: str | None, pid: int | None) -> str:
    return f"{worker or '?'}" + (f" pid {pid}" if pid else "")


def _lost_line(b: dict) -> str:
    """One delivery whose worker died: who held the batch, when its lease ran out, who took it over."""
    expired = f"lease ran out {b['lease_until']:%H:%M:%S}" if b["lease_until"] else "no lease"
    then = (
        f"taken over by {_holder(b['taken_over_by'], b['taken_over_pid'])} at {b['taken_over_at']:%H:%M:%S}"
        if b["taken_over_at"]
        else "waiting for a worker"
    )
    return (
        f"{Stage(b['stage']).batch_name(b['batch_no'])} (attempt {b['attempt']}): "
        f"{_holder(b['worker'], b['worker_pid'])} died, {expired}; "
        f"noticed {b['noticed_at']:%H:%M:%S}, {then}"
    )


def _watermark(value: Watermark | None) -> str:
    return f"{value.updated_at.isoformat()} / review {value.review_id}" if value else "-"


def _plan_lines(run: dict) -> list[str]:
    """How the run read the source (mode, watermarks) and what its version changed."""
    plan = plan_of(run)
    if plan is None:
        return []
    lines = [
        f"  mode {plan.mode} ({plan.reason}); read changes after {_watermark(plan.since)}; "
        f"the next run reads after {_watermark(watermark_of(run))}"
    ]
    if run["changes"]:
        changes = ", ".join(f"{value:,} {name.replace('_', ' ')}" for name, value in run["changes"].items())
        lines.append(f"  changes: {changes}")
    return lines


def cmd_history_init(args: argparse.Namespace) -> int:
    settings = get_settings()
    init_metadata_db(settings)
    print(f"metadata database {settings.metadata_db} ready")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    c = clients.init_operator(get_settings())
    params = {k: v for k, v in (("limit", args.limit), ("batch_size", args.batch_size)) if v is not None}
    if args.full:
        params["full"] = True
    try:
        run_id = trigger_run(c.history, send, cli_actor(), params)
    except RunAlreadyActive as exc:
        print(f"{exc}; watching it instead")
        run_id = exc.run_id
    print(f"run {run_id} enqueued")
    if args.no_wait:
        return 0
    run = watch(c.history, run_id, args.timeout)
    print(format_report(run, c.history.stage_summary(run_id), c.history.lost_batches([run_id])))
    return 0 if run["status"] == "succeeded" else 1


def cmd_runs(args: argparse.Namespace) -> int:
    c = clients.init_operator(get_settings())
    if args.run_id:
        run = c.history.get_run(args.run_id)
        if run is None:
            print(f"no run {args.run_id}")
            return 1
        print(format_report(run, c.history.stage_summary(args.run_id), c.history.lost_batches([args.run_id])))
        return 0
    for run in c.history.list_runs(args.limit):
        created: datetime = run["created_at"]
        print(
            f"{run['run_id']}  {run['status']:<10} {run['trigger']:<5} {created:%Y-%m-%d %H:%M:%S}  "
            f"rows {run['curated_rows'] or '-'}  {run['error'] or ''}"
        )
    return 0


def add_run_commands(sub: argparse._SubParsersAction) -> None:
    history = sub.add_parser("history", help="the pipeline's run-history database")
    history.add_argument("action", choices=["init"])
    history.set_defaults(func=cmd_history_init)

    run = sub.add_parser("run", help="trigger a pipeline run and show its progress per stage")
    run.add_argument(
        "--full",
        action="store_true",
        help="read and score every review, not only what changed since the served version",
    )
    run.add_argument("--limit", type=int, help="extract at most this many reviews (a smoke run)")
    run.add_argument("--batch-size", type=int, help="reviews per batch (default: BATCH_SIZE)")
    run.add_argument("--no-wait", action="store_true", help="enqueue and return")
    run.add_argument("--timeout", type=float, default=None, help="give up watching after this many seconds")
    run.set_defaults(func=cmd_run)

    runs = sub.add_parser("runs", help="recent runs, or one run's per-stage report")
    runs.add_argument("run_id", nargs="?")
    runs.add_argument("--limit", type=int, default=20)
    runs.set_defaults(func=cmd_runs)
