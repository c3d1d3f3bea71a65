"""The CLI's operator actions in the audit trail, by the OS user, and ``reviews audit``'s lines."""

from __future__ import annotations

import getpass
import subprocess
import sys
from datetime import UTC, date, datetime

from ops.audit_cli import format_action
from shared.flow import trigger_run
from shared.history.audit import cli_actor
from shared.recovery import operator_retry
from tests.pipeline.runs import Outbox, failed_run


def test_a_cli_trigger_and_retry_are_recorded_once_by_the_os_user(history, servers):
    outbox = Outbox()
    for active in history.list_runs(100):  # another module's trigger of today would refuse this one
        if active["status"] in ("queued", "running"):
            history.fail_run(active["run_id"], "ended by the test")
    run_id = trigger_run(history, outbox, cli_actor(), {"limit": 3})
    history.fail_run(run_id, "ended by the test")  # today's run must not stay active for other tests
    failed = failed_run(history, date(1995, 4, 1))
    operator_retry(history, outbox, cli_actor(), failed)
    history.fail_run(failed, "ended by the test")
    retry, trigger = history.audit_trail(2)
    assert (trigger["actor"], trigger["via"], trigger["action"]) == (getpass.getuser(), "cli", "trigger")
    assert (trigger["target"], trigger["outcome"], trigger["detail"]) == (run_id, "accepted: queued", {"limit": 3})
    assert (retry["action"], retry["target"], retry["via"]) == ("retry", failed, "cli")
    assert history.get_run(run_id)["trigger"] == "cli"
    # and `reviews audit` shows them, newest first
    shown = subprocess.run(
        [sys.executable, "-m", "ops.cli", "audit", "--limit", "2"],
        env=servers.child_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr
    assert [line.split()[4:6] for line in shown.stdout.splitlines()] == [["retry", failed], ["trigger", run_id]]


def test_reviews_audit_prints_one_line_an_action():
    action = {
        "at": datetime(2026, 12, 5, 2, 3, 4, tzinfo=UTC),
        "via": "api",
        "actor": "operator",
        "action": "rollback",
        "target": "20260501T000000Z-777777",
        "outcome": "done: latest is 20260501T000000Z-777777",
        "detail": {},
    }
    assert format_action(action) == (
        "2026-12-05 02:03:04  api  operator         rollback 20260501T000000Z-777777      "
        "done: latest is 20260501T000000Z-777777"
    )
