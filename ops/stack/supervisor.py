"""The local stack's supervisor: it starts the stack and restarts any component that exits.

What compose's ``restart: unless-stopped`` does in production. ``reviews stack up`` spawns it; it
runs ``Stack.up`` itself, so every component is its child (the PostgreSQL postmaster, which
``pg_ctl`` daemonises, too: the supervisor is a child subreaper) and it learns how each one
ended (exit code or signal) from ``waitpid``. A component that exits is restarted after a backoff
that doubles while it keeps failing and starts over once it has run ``STABLE_AFTER_S``. The count
and the last reason are kept in ``run/supervisor.json`` for ``reviews stack status`` and logged.
``reviews stack down`` stops the supervisor before the components, so nothing comes back.

A loop over the stack's own components rather than supervisord or circus: a restart is the
component's own start *and* its after-start step (the S3 server's lake grants, the Mongo users,
the metadata schema), PostgreSQL daemonises through ``pg_ctl``, and each program's secrets would
otherwise be written into the other tool's configuration.

    python -m ops.stack.supervisor     # run by `reviews stack up`, configured by the environment
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
import threading
import time
from dataclasses import asdict

import structlog

from ops.stack.components import Component
from ops.stack.manager import READY, SUPERVISOR, Restarts, Stack, read_restarts, restarts_path
from ops.stack.process import write_private

BACKOFF_S = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)  # before the 1st, 2nd, … consecutive restart, then the last
STABLE_AFTER_S = 60.0  # a component that ran this long starts its backoff over
POLL_S = 0.5

_PR_SET_CHILD_SUBREAPER = 36

log = structlog.get_logger("ops.stack.supervisor")


def describe(status: int) -> str:
    """A wait status in words: 'killed by SIGKILL', 'exited with code 1'."""
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exited with code {os.WEXITSTATUS(status)}"


def backoff(consecutive: int) -> float:
    return BACKOFF_S[min(consecutive, len(BACKOFF_S)) - 1]


class Supervisor:
    def __init__(self, stack: Stack):
        self.stack = stack
        self.restarts: dict[str, Restarts] = read_restarts(stack.ctx)
        self.exits: dict[int, int] = {}  # pid -> wait status, reaped but not yet accounted for
        self.due: dict[str, float] = {}  # component -> monotonic time of its next start
        # The pid each component last ran as: its pid file may be gone by the time it is seen dead
        # (any `status` discards a stale one).
        self.pids: dict[str, int] = {}

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.exits[pid] = status

    def check(self) -> None:
        """One pass: account for the components that exited, start those whose backoff is over."""
        self._reap()
        ctx = self.stack.ctx
        for component in self.stack.components:
            record = ctx.pidfile(component.name).read()
            if record is not None and record.alive():
                self.pids[component.name] = record.pid
                entry = self.restarts.get(component.name)
                if entry is not None and time.time() - entry.exited_at > STABLE_AFTER_S:
                    entry.consecutive = 0
                continue
            if component.name not in self.due:
                self._reap()  # it may have died since the pass began: its status is then still to collect
                pid = self.pids.pop(component.name, None)
                status = self.exits.pop(pid, None) if pid else None
                reason = describe(status) if status is not None else "gone (exit status not seen)"
                self._exited(component, reason, pid)
            if time.monotonic() >= self.due[component.name]:
                self._restart(component)
        self.exits.clear()  # what is left were helpers (pg_ctl, a worker's children): nothing to account for

    def _exited(self, component: Component, reason: str, pid: int | None) -> None:
        entry = self.restarts.setdefault(component.name, Restarts())
        entry.count += 1
        entry.consecutive += 1
        entry.reason, entry.exited_at = reason, time.time()
        delay = backoff(entry.consecutive)
        self.due[component.name] = time.monotonic() + delay
        log.warning(
            "component exited",
            component=component.name,
            pid=pid,
            reason=reason,
            restart=entry.count,
            restart_in_s=delay,
        )
        if pid is not None:
            try:  # what the dead process leaves in its group (the API's workers, PostgreSQL's backends)
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self._save()

    def _restart(self, component: Component) -> None:
        del self.due[component.name]
        try:
            self.stack.launch(component, lambda name, msg: log.info(msg, component=name))
        except Exception as exc:  # a failed start is one more exit, with its own backoff
            self._exited(component, f"failed to start: {type(exc).__name__}: {exc}"[:300], None)

    def _save(self) -> None:
        write_private(restarts_path(self.stack.ctx), json.dumps({n: asdict(r) for n, r in self.restarts.items()}))

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.check()
            stop.wait(POLL_S)
        log.info("supervisor stopped; the components keep running")


def main() -> int:
    from shared.logs import configure_logging
    from shared.settings import get_settings

    settings = get_settings()
    configure_logging(settings, service=True)
    # Orphans of our children (the postmaster pg_ctl leaves behind) become ours: waitpid sees them.
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stack = Stack(settings)
    stack.ctx.pidfile(SUPERVISOR).write(os.getpid(), [sys.executable, "-m", "ops.stack.supervisor"])
    try:
        stack.up(lambda name, msg: print(f"  {name:<22} {msg}", flush=True))
    except Exception as exc:  # noqa: BLE001 - whatever stopped the start is what `up` reports
        print(f"the stack did not come up: {type(exc).__name__}: {exc}", flush=True)
        stack.ctx.pidfile(SUPERVISOR).remove()
        return 1
    print(READY, flush=True)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # `up` has read all it waits for: the pipe closes
    Supervisor(stack).run(stop)
    stack.ctx.pidfile(SUPERVISOR).remove()
    return 0


if __name__ == "__main__":
    sys.exit(main())
