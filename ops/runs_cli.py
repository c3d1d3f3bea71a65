"""``reviews history init``, ``reviews run`` and ``reviews runs``: trigger and watch pipeline runs."""

from __future__ import annotations

import argparse
import time
from datetime import datetime

from tqdm import tqdm

from shared import clients
from shared.history import History, RunAlreadyActive, Stage, Watermark, init_metadata_db, plan_of, watermark_of
from shared.settings import get_settings
from shared.tasks import BatchRef, send

DONE = ("succeeded", "failed")


def trigger_run(history: History, trigger: str, params: dict) -> str:
    """Create a run and enqueue its extraction: the path every trigger but beat takes."""
    run_id = history.create_run(trigger, params)
    send("extract.run", BatchRef(run_id, 0, ""))
    return run_id


def watch(history: History, run_id: str, timeout_s: float | None = None, interval_s: float = 0.5) -> dict:
    """Show one progress bar per stage until the run ends; returns the run's final record."""
    bars = {stage: tqdm(desc=f"{stage.value:<9}", unit="batch", position=i, leave=True, dynamic_ncols=True)
            for i, stage in enumerate(Stage)}  # fmt: skip
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    try:
        while True:
            run = history.get_run(run_id)
            summary = history.stage_summary(run_id)
            total = run["extracted_batches"]
            for stage, bar in bars.items():
                s = summary.get(stage.value, {})
                bar.total = 1 if stage is Stage.PUBLISH else (total if stage is not Stage.EXTRACT or total else None)
                bar.n = s.get("succeeded", 0)
                bar.set_postfix(rows=s.get("rows_out", 0), rejects=s.get("rejects", 0), retrying=s.get("retrying", 0),
                                dead=s.get("dead", 0), refresh=False)  # fmt: skip
                bar.refresh()
            if run["status"] in DONE:
                return run
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"run {run_id} still {run['status']} after {timeout_s:.0f}s")
            time.sleep(interval_s)
    finally:
        for bar in bars.values():
            bar.close()


def format_report(run: dict, summary: dict[str, dict]) -> str:
    """The run's outcome and its per-stage time split, as the run history recorded them."""
    lines = [f"run {run['run_id']}: {run['status']}"]
    if run["error"]:
        lines.append(f"  error: {run['error']}")
    wall = (run["finished_at"] - run["started_at"]).total_seconds() if run["finished_at"] and run["started_at"] else 0
    lines.append(f"  source rows {run['source_rows']}, curated rows {run['curated_rows']}, "
                 f"curated file {run['curated_key']}, end to end {wall:.1f}s")  # fmt: skip
    lines.extend(_plan_lines(run))
    lines.append(f"  {'stage':<10}{'batches':>8}{'rows in':>9}{'rows out':>9}{'rejects':>8}{'attempts':>9}"
                 f"{'busy s':>9}{'wall s':>8}  state")  # fmt: skip
    for stage in Stage:
        s = summary.get(stage.value)
        if s is None:
            lines.append(f"  {stage.value:<10}{'-':>8}")
            continue
        span = (s["last_finished"] - s["first_started"]).total_seconds() if s["last_finished"] else 0.0
        state = ", ".join(f"{s[k]} {k}" for k in ("running", "retrying", "dead") if s[k]) or "done"
        lines.append(f"  {stage.value:<10}{s['succeeded']:>8}{s['rows_in']:>9}{s['rows_out']:>9}{s['rejects']:>8}"
                     f"{s['attempts']:>9}{s['busy_s']:>9.1f}{span:>8.1f}  {state}")  # fmt: skip
        if s["last_error"]:
            lines.append(f"      last error: {s['last_error'][:200]}")
    return "\n".join(lines)


def _watermark(value: Watermark | None) -> str:
    return f"{value.updated_at.isoformat()} / review {value.review_id}" if value else "-"


def _plan_lines(run: dict) -> list[str]:
    """How the run read the source (mode, watermarks) and what its version changed."""
    plan = plan_of(run)
    if plan is None:
        return []
    lines = [f"  mode {plan.mode} ({plan.reason}); read changes after {_watermark(plan.since)}; "
             f"the next run reads after {_watermark(watermark_of(run))}"]  # fmt: skip
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
    c = clients.init(get_settings())
    params = {k: v for k, v in (("limit", args.limit), ("batch_size", args.batch_size)) if v is not None}
    if args.full:
        params["full"] = True
    try:
        run_id = trigger_run(c.history, "cli", params)
    except RunAlreadyActive as exc:
        print(f"{exc}; watching it instead")
        run_id = exc.run_id
    print(f"run {run_id} enqueued")
    if args.no_wait:
        return 0
    run = watch(c.history, run_id, args.timeout)
    print(format_report(run, c.history.stage_summary(run_id)))
    return 0 if run["status"] == "succeeded" else 1


def cmd_runs(args: argparse.Namespace) -> int:
    c = clients.init(get_settings())
    if args.run_id:
        run = c.history.get_run(args.run_id)
        if run is None:
            print(f"no run {args.run_id}")
            return 1
        print(format_report(run, c.history.stage_summary(args.run_id)))
        return 0
    for run in c.history.list_runs(args.limit):
        created: datetime = run["created_at"]
        print(f"{run['run_id']}  {run['status']:<10} {run['trigger']:<5} {created:%Y-%m-%d %H:%M:%S}  "
              f"rows {run['curated_rows'] or '-'}  {run['error'] or ''}")  # fmt: skip
    return 0


def add_run_commands(sub: argparse._SubParsersAction) -> None:
    history = sub.add_parser("history", help="the pipeline's run-history database")
    history.add_argument("action", choices=["init"])
    history.set_defaults(func=cmd_history_init)

    run = sub.add_parser("run", help="trigger a pipeline run and show its progress per stage")
    run.add_argument("--full", action="store_true",
                     help="read and score every review, not only what changed since the served version")
    run.add_argument("--limit", type=int, help="extract at most this many reviews (a smoke run)")
    run.add_argument("--batch-size", type=int, help="reviews per batch (default: BATCH_SIZE)")
    run.add_argument("--no-wait", action="store_true", help="enqueue and return")
    run.add_argument("--timeout", type=float, default=None, help="give up watching after this many seconds")
    run.set_defaults(func=cmd_run)

    runs = sub.add_parser("runs", help="recent runs, or one run's per-stage report")
    runs.add_argument("run_id", nargs="?")
    runs.add_argument("--limit", type=int, default=20)
    runs.set_defaults(func=cmd_runs)
