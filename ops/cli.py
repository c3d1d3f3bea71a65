"""``reviews``: the one entry point for every operator command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from shared.logs import configure_logging
from shared.settings import UnsafeSecrets, get_settings


def _report(name: str, message: str) -> None:
    print(f"  {name:<22} {message}", flush=True)


def cmd_stack(args: argparse.Namespace) -> int:
    from ops.stack.manager import Stack, StackError

    settings = get_settings()
    stack = Stack(settings)
    if args.action == "up":
        print(f"starting the local stack in {settings.state_path}, under a supervisor")
        try:
            stack.supervise(_report)
        except StackError as failed:
            sys.exit(str(failed))
    elif args.action == "down":
        print(f"stopping the local stack in {settings.state_path}")
        stack.down(_report)
        return 0
    statuses = stack.status()
    width = max(len(s.name) for s in statuses)
    supervisor = stack.supervisor()
    print(
        f"  {'supervisor':<{width}}  {supervisor or '-':>8}  {'restarts what exits' if supervisor else 'not running'}"
    )
    for s in statuses:
        pid = str(s.pid) if s.pid else "-"
        restarts = f"; {s.restarts.summary()}" if s.restarts.count else ""
        print(f"  {s.name:<{width}}  {pid:>8}  {s.detail}{restarts}")
    return 0 if all(s.answering for s in statuses) else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reviews", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    stack = sub.add_parser("stack", help="the local stack of real servers and workers")
    stack.add_argument("action", choices=["up", "down", "status"])
    stack.set_defaults(func=cmd_stack)

    from ops.alerting import add_alerting_command
    from ops.audit_cli import add_audit_command
    from ops.doctor import add_doctor_command
    from ops.lake_cli import add_lake_commands
    from ops.logs_cli import add_log_commands
    from ops.retry_cli import add_retry_command
    from ops.runs_cli import add_run_commands
    from ops.source.cli import add_source_commands

    add_source_commands(sub)
    add_run_commands(sub)
    add_retry_command(sub)
    add_lake_commands(sub)
    add_doctor_command(sub)
    add_alerting_command(sub)
    add_log_commands(sub)
    add_audit_command(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:  # the settings are read first by the parser's imports (the Celery app), or below
        args = build_parser().parse_args(argv)
        configure_logging(get_settings(), quiet=True)
        return args.func(args)
    except UnsafeSecrets as refused:
        sys.exit(str(refused))  # the message alone: which settings and why


if __name__ == "__main__":
    sys.exit(main())
