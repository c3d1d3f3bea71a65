"""``reviews logs``: the local stack's logs, JSON lines printed readably, filtered by run.

Components write one JSON object per event (for a log platform); an operator reads
them here as ``time level component event key=value ...``.
"""

from __future__ import annotations

import argparse

from shared.log_files import components, tail
from shared.settings import get_settings


def cmd_logs(args: argparse.Namespace) -> int:
    logs = get_settings().state_path / "logs"
    available = components(logs)
    if not args.component and not args.run:
        print(f"logs in {logs}: {', '.join(available) or 'none'}")
        return 0
    names = [args.component] if args.component else available
    if args.component and args.component not in available:
        print(f"no log for {args.component!r} in {logs}; there are: {', '.join(available) or 'none'}")
        return 2
    for name in names:
        lines = tail(logs / f"{name}.log", args.run, args.last)
        if lines or args.component:
            print(f"==> {name}")
            print("\n".join(lines))
    return 0


def add_log_commands(sub: argparse._SubParsersAction) -> None:
    logs = sub.add_parser("logs", help="a component's log, readably; --run: one run's events in every log")
    logs.add_argument("component", nargs="?", help="e.g. worker-classify-1, api, beat (none: list them)")
    logs.add_argument("--run", help="only the lines of this run")
    logs.add_argument("--last", type=int, default=50, help="how many lines, from the end")
    logs.set_defaults(func=cmd_logs)
