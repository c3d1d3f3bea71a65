"""``reviews stack up|down|status``: the local stack under one state directory.

``up`` is idempotent: a component whose recorded process is alive is left alone,
a stale pid file is discarded. ``status`` pings every component for real.
``down`` stops exactly the processes this state directory recorded, the supervisor first
(``reviews stack up`` leaves one, ops/stack/supervisor.py, which restarts what exits).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ops.stack.components import Component, Context, components
from ops.stack.process import PidFile, free_port, free_port_block, terminate, write_private
from shared.settings import Settings

Report = Callable[[str, str], None]

SUPERVISOR = "supervisor"  # its pid file and log: run/supervisor.pid, logs/supervisor.log
READY = "supervisor: stack up"  # the supervisor's last line to `up` when the stack answers


@dataclass
class Restarts:
    """What the supervisor did for one component: how often it restarted it, and why the last time."""

    count: int = 0
    reason: str = ""  # 'killed by SIGKILL', 'exited with code 1', 'failed to start: …'
    exited_at: float = 0.0  # epoch seconds
    consecutive: int = 0  # exits since it last ran long enough to count as stable: the backoff's step

    def summary(self) -> str:
        at = time.strftime("%H:%M:%S", time.localtime(self.exited_at))
        return f"restarted {self.count}x, last: {self.reason} at {at}" if self.count else ""


def restarts_path(ctx: Context) -> Path:
    return ctx.root / "run" / "supervisor.json"


def read_restarts(ctx: Context) -> dict[str, Restarts]:
    try:
        return {name: Restarts(**data) for name, data in json.loads(restarts_path(ctx).read_text()).items()}
    except (FileNotFoundError, ValueError, TypeError):
        return {}


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    kind: str
    pid: int | None
    answering: bool
    detail: str
    restarts: Restarts


class StackError(RuntimeError):
    pass


def _port_in_use(port: int, grace_s: float = 5.0) -> bool:
    """Whether something listens on ``port``, after ``grace_s`` for it to go: a process of ours
    that was just killed still holds its sockets for a moment after its pid file says it is gone."""
    deadline = time.monotonic() + grace_s
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.5)
            if sock.connect_ex(("127.0.0.1", port)) != 0:
                return False
        if time.monotonic() > deadline:
            return True
        time.sleep(0.1)


def _ping(component: Component, ctx: Context) -> str | None:
    """None when the component answers, else why not."""
    try:
        component.ping(ctx)
    except Exception as exc:  # any failure to answer is the answer
        return f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
    return None


def _log_tail(ctx: Context, name: str, lines: int = 15) -> str:
    try:
        return "\n".join(ctx.log(name).read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


class Stack:
    def __init__(self, settings: Settings, kinds: tuple[str, ...] = ("server", "service")):
        self.ctx = Context(settings)
        self.components = [c for c in components(settings) if c.kind in kinds]

    def up(self, report: Report = lambda name, msg: None) -> list[ComponentStatus]:
        self.ctx.root.mkdir(parents=True, exist_ok=True)
        # PostgreSQL may run as another user, who must be able to reach its data directory.
        self.ctx.root.chmod(0o755)
        servers = [c for c in self.components if c.kind == "server"]
        services = [c for c in self.components if c.kind == "service"]
        for server in servers:  # one at a time: each depends on none, services on all
            if self.launch(server, report):
                self._wait([server], report)
        launched = [service for service in services if self.launch(service, report)]
        self._wait(launched, report)
        return self.status()

    def supervise(self, report: Report = lambda name, msg: None) -> int:
        """What ``reviews stack up`` does: a supervisor that brings the stack up and keeps it up.

        A supervisor already running is stopped first (the components stay): the new one starts what
        this configuration adds. Returns the new supervisor's pid; raises when the stack did not come up.
        """
        self.stop_supervisor(report)
        self.ctx.root.mkdir(parents=True, exist_ok=True)
        self.ctx.root.chmod(0o755)
        write_private(self.ctx.log(SUPERVISOR), "", append=True)
        with open(self.ctx.log(SUPERVISOR), "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "ops.stack.supervisor"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,  # its report of the start, then closed
                stderr=log,
                env=self.ctx.child_env(),
                cwd=self.ctx.root,
                start_new_session=True,  # the operator's umask: PostgreSQL's user must reach its data
                text=True,
            )
        said: list[str] = []  # after the components' reports: READY, or why not
        for line in proc.stdout:
            if line.startswith("  ") and not said:
                name, _, msg = line.strip().partition(" ")
                report(name, msg.strip())
            else:
                said.append(line.rstrip("\n"))
        if said != [READY]:
            proc.wait()
            raise StackError("\n".join(said) or f"the supervisor exited ({proc.returncode}); see {log.name}")
        return proc.pid

    def stop_supervisor(self, report: Report = lambda name, msg: None) -> None:
        pidfile = self.ctx.pidfile(SUPERVISOR)
        if (record := pidfile.live()) is not None:
            terminate(record)
            pidfile.remove()
            report(SUPERVISOR, f"stopped (pid {record.pid})")

    def launch(self, component: Component, report: Report) -> bool:
        """Start the component unless it already runs; True when there is a start to wait for."""
        if component.running(self.ctx) is not None:
            report(component.name, "already running")
            return False
        port = component.port(self.ctx.settings)
        if port is not None and _port_in_use(port):
            raise StackError(
                f"{component.name}: port {port} is in use by a process this stack did not start "
                f"(state dir {self.ctx.root}); stop it or choose another port in the settings"
            )
        record = component.start(self.ctx)
        report(component.name, f"started (pid {record.pid})")
        component.after_start(self.ctx)
        return True

    def _wait(self, pending: list[Component], report: Report) -> None:
        start = time.monotonic()
        pending = list(pending)
        while pending:
            for component in list(pending):
                reason = _ping(component, self.ctx)
                if reason is None:
                    report(component.name, f"answering after {time.monotonic() - start:.1f}s")
                    pending.remove(component)
                elif component.running(self.ctx) is None:
                    raise StackError(
                        f"{component.name} exited during start-up; last lines of "
                        f"{self.ctx.log(component.name)}:\n{_log_tail(self.ctx, component.name)}"
                    )
                elif time.monotonic() - start > component.start_timeout_s:
                    raise StackError(
                        f"{component.name} did not answer within {component.start_timeout_s:.0f}s "
                        f"({reason}); last lines of its log:\n{_log_tail(self.ctx, component.name)}"
                    )
            if pending:
                time.sleep(0.25)

    def supervisor(self) -> int | None:
        record = self.ctx.pidfile(SUPERVISOR).live()
        return record.pid if record else None

    def status(self) -> list[ComponentStatus]:
        result = []
        restarts = read_restarts(self.ctx)
        for component in self.components:
            record = component.running(self.ctx)
            reason = _ping(component, self.ctx)
            if record is None:
                detail = "stopped" if reason else "answering, but not started by this stack"
            else:
                detail = "answering" if reason is None else f"running, not answering: {reason}"
            done = restarts.get(component.name, Restarts())
            pid = record.pid if record else None
            result.append(ComponentStatus(component.name, component.kind, pid, reason is None, detail, done))
        return result

    def down(self, report: Report = lambda name, msg: None) -> None:
        self.stop_supervisor(report)  # first: nothing may restart what is stopped below
        # Then what the state directory recorded beyond this configuration (an extra classifier
        # worker started with CLASSIFY_WORKERS=2, say): down stops everything `up` ever started.
        known = {c.name for c in self.components}
        for pidfile in sorted((self.ctx.root / "run").glob("*.pid")):
            if pidfile.stem not in known and (record := PidFile(pidfile).live()) is not None:
                terminate(record)
                pidfile.unlink(missing_ok=True)
                report(pidfile.stem, f"stopped (pid {record.pid})")
        for component in reversed(self.components):
            record = component.running(self.ctx)
            if record is None:
                continue
            component.stop(self.ctx)
            report(component.name, f"stopped (pid {record.pid})")


def stack_settings(root: Path, **overrides) -> Settings:
    """Settings for a stack of our own under ``root``, on ports nobody else uses, with the local placeholders."""
    return Settings(
        environment="local",
        state_dir=root,
        redis_port=free_port(),
        postgres_port=free_port(),
        mongo_port=free_port(),
        s3_endpoint_url=f"http://127.0.0.1:{free_port()}",
        api_port=free_port(),
        flower_port=free_port(),
        metrics_port=free_port_block(40),  # each worker's port derives from it (up to 3 replicas a queue)
        **overrides,
    )


def make_state_dir(prefix: str) -> Path:
    """A fresh state directory for a private stack (tests, benchmarks), readable by PostgreSQL's user.

    Not under pytest's tmp_path: that is private to root, and PostgreSQL runs as another user."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    root.chmod(0o755)
    return root
