"""``reviews retry RUN_ID [--stage STAGE] [--batch N]``: re-run what failed in a run, then publish once."""

from __future__ import annotations

import argparse

from ops.runs_cli import format_report, watch
from shared import clients
from shared.history.runs import RunNotFound
from shared.recovery import RetryRefused, retry_run
from shared.settings import get_settings
from shared.stages import Stage
from shared.tasks import send


def cmd_retry(args: argparse.Namespace) -> int:
    c = clients.init_operator(get_settings())
    stage = Stage(args.stage) if args.stage else None
    try:
        retried = retry_run(c.history, send, args.run_id, "cli", stage, args.batch)
    except (RunNotFound, RetryRefused) as exc:
        print(f"not retried: {exc}")
        return 1
    print(f"run {args.run_id} running again; cleared for a re-run:")
    for b in retried.cleared:
        error = f": {b['last_error'][:160]}" if b["last_error"] else ""
        print(f"  {b['stage']:<9} batch {b['batch_no']:>5}  was {b['status']} after {b['attempts']} attempts{error}")
    print(f"announced: {', '.join(retried.announced) or 'nothing yet (they follow their input)'}")
    if args.no_wait:
        return 0
    run = watch(c.history, args.run_id, args.timeout)
    print(format_report(run, c.history.stage_summary(args.run_id)))
    return 0 if run["status"] == "succeeded" else 1


def add_retry_command(sub: argparse._SubParsersAction) -> None:
    retry = sub.add_parser(
        "retry",
        help="re-run a failed run's failed batches and what follows them, then publish once",
        description="Clear a failed run's failed (or dead-lettered) batches and run them again, with "
        "everything downstream of them; batches that succeeded are kept. --stage and --batch narrow the "
        "choice; naming both re-runs that batch even if it succeeded, with its downstream.",
    )
    retry.add_argument("run_id")
    retry.add_argument("--stage", choices=[s.value for s in Stage], help="only this stage's batches")
    retry.add_argument("--batch", type=int, help="only this batch number (0: the extraction or publish step)")
    retry.add_argument("--no-wait", action="store_true", help="announce and return")
    retry.add_argument("--timeout", type=float, default=None, help="give up watching after this many seconds")
    retry.set_defaults(func=cmd_retry)
