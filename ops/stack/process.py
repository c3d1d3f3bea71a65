"""Processes the local stack starts, tracked by pid files that know whom they name.

A pid file records the pid *and* the process's start time from /proc: after a
reboot or a crash the pid may belong to somebody else, and ``down`` must stop
exactly the processes it started and nothing else.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


def _start_time(pid: int) -> int | None:
    """Clock ticks since boot at which ``pid`` started, or None if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":  # a zombie has exited; only its parent's wait is missing
        return None
    return int(fields[19])


@dataclass(frozen=True)
class PidRecord:
    pid: int
    start_time: int
    command: list[str]

    def alive(self) -> bool:
        return _start_time(self.pid) == self.start_time


class PidFile:
    def __init__(self, path: Path):
        self.path = path

    def read(self) -> PidRecord | None:
        try:
            data = json.loads(self.path.read_text())
            return PidRecord(int(data["pid"]), int(data["start_time"]), list(data["command"]))
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError):
            return None  # unreadable: treated like a stale file

    def live(self) -> PidRecord | None:
        """The recorded process if it is still the one we started; removes a stale file."""
        record = self.read()
        if record is not None and record.alive():
            return record
        self.path.unlink(missing_ok=True)
        return None

    def write(self, pid: int, command: list[str]) -> PidRecord:
        start = _start_time(pid)
        if start is None:
            raise RuntimeError(f"process {pid} ({command[0]}) exited right after start")
        record = PidRecord(pid, start, command)
        tmp = self.path.with_suffix(".tmp")
        write_private(tmp, json.dumps({"pid": pid, "start_time": start, "command": command}))
        tmp.replace(self.path)
        return record

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def write_private(path: Path, text: str, append: bool = False) -> None:
    """Write ``text`` to a file only this user may read (0600, also when it existed with another mode)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
    with open(os.open(path, flags, 0o600), "a" if append else "w") as file:
        os.fchmod(file.fileno(), 0o600)
        file.write(text)


def spawn(command: list[str], log_path: Path, env: dict[str, str], cwd: Path | None = None) -> int:
    """Start ``command`` detached in its own session, output appended to ``log_path``.

    The log and whatever the process creates are private to this user (umask 077): a log or a data file
    may hold what a secret protects, or a secret itself in an error message."""
    write_private(log_path, "", append=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
            umask=0o077,
        )
    return proc.pid


def terminate(record: PidRecord, timeout: float = 15.0) -> None:
    """SIGTERM the process group we started, then SIGKILL what is left after ``timeout``."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        if not record.alive():
            return
        try:
            # start_new_session made the process its group's leader: the group is ours.
            os.killpg(record.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            _reap(record.pid)
            if not record.alive():
                return
            time.sleep(0.1)
    if record.alive():
        raise RuntimeError(f"process {record.pid} ({record.command[0]}) survived SIGKILL")


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass  # not our child (started by an earlier `up`): init reaps it


def free_port() -> int:
    """A loopback port nobody listens on now (for stacks and servers of tests and benchmarks)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def free_port_block(span: int) -> int:
    """The first of ``span`` consecutive loopback ports nobody uses now.

    Drawn below the kernel's ephemeral range (32768 and up), where the local ends of outgoing
    connections would otherwise take ports of the block between now and the moment they are bound.
    """
    rng = random.Random()
    while True:
        base = rng.randrange(20000, 32000 - span)
        try:
            with contextlib.ExitStack() as held:
                for port in range(base, base + span):
                    sock = held.enter_context(socket.socket())
                    sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
