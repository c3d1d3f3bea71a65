"""``reviews audit``: the operators' actions, newest first (the monthly access review reads it)."""

from __future__ import annotations

import argparse

from shared import clients
from shared.history.audit import MAX_PAGE
from shared.settings import get_settings


def format_action(a: dict) -> str:
    detail = " ".join(f"{k}={v}" for k, v in a["detail"].items())
    return (
        f"{a['at']:%Y-%m-%d %H:%M:%S}  {a['via']:<3}  {a['actor']:<16} {a['action']:<8} {a['target'] or '-':<28} "
        f"{a['outcome']}{'  ' + detail if detail else ''}"
    )


def cmd_audit(args: argparse.Namespace) -> int:
    c = clients.init_operator(get_settings())
    for action in c.history.audit_trail(args.limit):
        print(format_action(action))
    return 0


def add_audit_command(sub: argparse._SubParsersAction) -> None:
    audit = sub.add_parser("audit", help="the operators' actions (trigger, retry, rollback, erasure), newest first")
    audit.add_argument("--limit", type=int, default=50, help=f"how many (at most {MAX_PAGE})")
    audit.set_defaults(func=cmd_audit)
