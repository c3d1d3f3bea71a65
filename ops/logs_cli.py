"""``reviews logs``: the local stack's logs, JSON lines printed readably, filtered by run.

Components write one JSON object per event (for a log platform); an operator reads
them here as ``time level component event key=value ...``.
"""

from __future__ import annotations

import argparse
import json
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path

from shared.settings import get_settings

# Shown first, in this order; every other key follows.
LEADING = ("timestamp", "level", "event")


def readable(line: str) -> str:
    """One log line for a person: JSON events laid out, anything else (a traceback line) as is."""
    try:
        event = json.loads(line)
    except ValueError:
        return line.rstrip("\n")
    if not isinstance(event, dict):
        return line.rstrip("\n")
    rest = " ".join(f"{k}={v}" for k, v in event.items() if k not in LEADING)
    return f"{event.get('timestamp', '')} {str(event.get('level', '')).upper():<7} {event.get('event', '')}  {rest}"


def matching(lines: Iterable[str], run_id: str | None) -> Iterator[str]:
    for line in lines:
        if run_id is None or run_id in line:
            yield line


def tail(path: Path, run_id: str | None, last: int) -> list[str]:
    with path.open(errors="replace") as f:
        return [readable(line) for line in deque(matching(f, run_id), maxlen=last)]


def cmd_logs(args: argparse.Namespace) -> int:
    logs = get_settings().state_path / "logs"
    available = sorted(p.stem for p in logs.glob("*.log"))
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
