"""The supervisor's rules, without a stack: how long it waits before a restart, how it names an exit.
(Restarts of real components: tests/ops/test_stack.py.)"""

from __future__ import annotations

import os
import signal
import subprocess

from ops.stack.supervisor import backoff, describe


def test_the_backoff_doubles_while_a_component_keeps_failing_and_stops_at_30_s():
    assert [backoff(n) for n in range(1, 9)] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]


def test_an_exit_is_named_by_its_signal_or_its_code():
    killed = subprocess.Popen(["sleep", "30"])
    os.kill(killed.pid, signal.SIGKILL)
    _, status = os.waitpid(killed.pid, 0)
    assert describe(status) == "killed by SIGKILL"
    failed = subprocess.Popen(["sh", "-c", "exit 3"])
    _, status = os.waitpid(failed.pid, 0)
    assert describe(status) == "exited with code 3"
