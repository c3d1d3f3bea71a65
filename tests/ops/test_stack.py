"""The local stack: real servers and workers up, idempotent, pinged for real, all stopped by down."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import redis
from pydantic import SecretStr

from ops.stack.manager import Stack, StackError, make_state_dir, stack_settings
from ops.stack.process import PidFile
from shared.redis_acl import broker_refusals


def processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in cmdline:
                found.append(int(entry.name))
    return found


def reviews_cli(settings, *args: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("reviews")
    return subprocess.run([str(exe), *args], env=settings.child_env(), capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def full_stack():
    """The whole stack as an operator starts it: `reviews stack up`, which leaves a supervisor."""
    root = make_state_dir("reviews-stack-test-")
    settings = stack_settings(root, api_workers=2)  # the stack's option of several API processes
    stack = Stack(settings)
    try:
        started = time.monotonic()
        result = reviews_cli(settings, "stack", "up")
        assert result.returncode == 0, result.stdout + result.stderr
        print(f"cold stack up: {time.monotonic() - started:.1f}s")  # noqa: T201 - a figure the issue asks for
        yield stack
    finally:
        stack.down()
        shutil.rmtree(root, ignore_errors=True)


def test_every_component_answers_a_real_ping(full_stack: Stack):
    statuses = full_stack.status()
    assert {s.name for s in statuses} >= {
        "redis",
        "postgres",
        "mongo",
        "s3",
        "worker-extract-1",
        "worker-archive-1",
        "worker-transform-1",
        "worker-classify-1",
        "worker-publish-1",
        "beat",
        "flower",
        "api",
    }
    assert [s.name for s in statuses if not s.answering] == []
    result = reviews_cli(full_stack.ctx.settings, "stack", "status")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "not answering" not in result.stdout and "worker-classify-1" in result.stdout


def api_workers(full_stack: Stack) -> list[int]:
    """The API's worker processes: children of the process the stack recorded, each serving requests."""
    master = next(c for c in full_stack.components if c.name == "api").running(full_stack.ctx).pid
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return [int(pid) for pid in children if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]


def test_the_api_runs_as_many_worker_processes_as_api_workers(full_stack: Stack):
    assert len(api_workers(full_stack)) == full_stack.ctx.settings.api_workers == 2


def test_a_second_up_starts_nothing(full_stack: Stack):
    before = {c.name: c.running(full_stack.ctx).pid for c in full_stack.components}
    events: list[tuple[str, str]] = []
    full_stack.up(lambda name, msg: events.append((name, msg)))
    assert {msg for _, msg in events} == {"already running"}
    assert {c.name: c.running(full_stack.ctx).pid for c in full_stack.components} == before


def pids(stack: Stack) -> dict[str, int | None]:
    return {c.name: (r.pid if (r := c.running(stack.ctx)) else None) for c in stack.components}


def test_the_supervisor_restarts_a_killed_worker_and_server_saying_why(full_stack: Stack):
    before = pids(full_stack)
    for name in ("worker-extract-1", "redis"):
        os.kill(before[name], signal.SIGKILL)
    deadline = time.monotonic() + 90
    while True:
        statuses = {s.name: s for s in full_stack.status()}
        back = [n for n in ("worker-extract-1", "redis") if statuses[n].answering and statuses[n].pid != before[n]]
        if len(back) == 2 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert back == ["worker-extract-1", "redis"], {n: statuses[n].detail for n in statuses}
    # only those two were restarted, once each, and the reason is the signal
    assert {n: p for n, p in pids(full_stack).items() if p != before[n]}.keys() == {"worker-extract-1", "redis"}
    assert {n: (s.restarts.count, s.restarts.reason) for n, s in statuses.items() if s.restarts.count} == {
        "worker-extract-1": (1, "killed by SIGKILL"),
        "redis": (1, "killed by SIGKILL"),
    }
    shown = reviews_cli(full_stack.ctx.settings, "stack", "status")
    lines = {line.split()[0]: line for line in shown.stdout.splitlines() if line.startswith("  ")}
    assert "restarted 1x, last: killed by SIGKILL" in lines["worker-extract-1"], shown.stdout
    assert "restarted 1x, last: killed by SIGKILL" in lines["redis"]
    assert "restarts what exits" in lines["supervisor"]
    logged = (full_stack.ctx.root / "logs" / "supervisor.log").read_text()
    assert logged.count('"reason": "killed by SIGKILL"') == 2


def test_a_pid_file_naming_a_reused_pid_is_stale(tmp_path):
    # given a pid file whose pid now belongs to another process (same pid, other start time)
    other = subprocess.Popen(["sleep", "30"])
    try:
        pidfile = PidFile(tmp_path / "x.pid")
        record = pidfile.write(other.pid, ["sleep", "30"])
        pidfile.path.write_text(pidfile.path.read_text().replace(str(record.start_time), str(record.start_time - 1)))
        # then it is not taken for ours, and is removed
        assert pidfile.live() is None and not pidfile.path.exists()
    finally:
        other.kill()
        other.wait()


def test_a_port_taken_by_someone_else_is_a_clear_error():
    root = make_state_dir("reviews-stack-port-")
    settings = stack_settings(root)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", settings.redis_port))
        squatter.listen()
        with pytest.raises(StackError, match=f"port {settings.redis_port} is in use"):
            Stack(settings, kinds=("server",)).up()
    shutil.rmtree(root, ignore_errors=True)


def session_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2 :].split()[3])


def started_processes(stack: Stack) -> list[int]:
    """Every process the stack started and their children (API workers, PostgreSQL's backends): its sessions."""
    sessions = {session_of(c.running(stack.ctx).pid) for c in stack.components}
    return [int(e.name) for e in Path("/proc").iterdir() if e.name.isdigit() and session_of(int(e.name)) in sessions]


def test_no_secret_in_a_command_line_or_in_a_file_others_may_read(full_stack: Stack):
    settings = full_stack.ctx.settings
    secrets = {n: v.get_secret_value() for n, v in settings if isinstance(v, SecretStr) and v.get_secret_value()}
    processes = started_processes(full_stack)
    assert len(processes) > len(full_stack.components)
    for pid in processes:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        assert [name for name, value in secrets.items() if value in cmdline] == [], cmdline
    readable = [path for path in full_stack.ctx.root.rglob("*") if path.is_file() and path.stat().st_mode & 0o044]
    for path in readable:
        text = path.read_bytes().decode(errors="replace")
        assert [name for name, value in secrets.items() if value in text] == [], path
    # What holds a command line or the Redis password: this user's alone.
    private = [*(full_stack.ctx.root / "run").glob("*.pid"), full_stack.ctx.root / "redis.conf"]
    assert {oct(path.stat().st_mode & 0o777) for path in private} == {"0o600"}
    config = (full_stack.ctx.root / "redis.conf").read_text()
    assert all(
        f">{secrets[name]}\n" in config for name in ("redis_password", "api_redis_password", "redis_admin_password")
    )


def listening_addresses(port: int) -> set[str]:
    """The local addresses (hex, as the kernel lists them) of the sockets listening on ``port``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, port_hex = local.rsplit(":", 1)
            if state == "0A" and int(port_hex, 16) == port:
                found.add(address)
    return found


def test_flower_listens_on_loopback_and_asks_for_the_password_from_its_environment(full_stack: Stack):
    settings = full_stack.ctx.settings
    assert listening_addresses(settings.flower_port) == {"0100007F"}  # 127.0.0.1
    url = f"http://127.0.0.1:{settings.flower_port}/api/workers"
    assert httpx.get(url, timeout=10).status_code == 401
    wrong = httpx.get(url, auth=(settings.flower_user, "not-the-password"), timeout=10)
    assert wrong.status_code == 401
    auth = (settings.flower_user, settings.flower_password.get_secret_value())
    assert httpx.get(url, auth=auth, timeout=10).status_code == 200


def test_workers_beat_and_flower_run_with_the_brokers_narrowed_redis_user(full_stack: Stack):
    settings = full_stack.ctx.settings
    # Flower asks every worker over the pidbox fanout (a broadcast, their replies) and reads their events
    auth = (settings.flower_user, settings.flower_password.get_secret_value())
    url = f"http://127.0.0.1:{settings.flower_port}/api/workers?refresh=1"
    deadline, answered = time.monotonic() + 60, {}
    while len(answered) < 5 and time.monotonic() < deadline:  # a loaded machine's replies may miss one broadcast
        workers = httpx.get(url, auth=auth, timeout=30)
        assert workers.status_code == 200
        answered = workers.json()
    assert len(answered) >= 5, answered
    next(c for c in full_stack.components if c.name == "beat").ping(full_stack.ctx)  # a fresh heartbeat
    # and Redis refused the broker's user nothing since it started: each runs only what shared/redis_acl.py allows
    with redis.Redis.from_url(settings.redis_admin_url, socket_timeout=5) as admin:
        assert broker_refusals(admin) == []


def test_down_stops_every_process_it_started_and_nothing_else(full_stack: Stack):
    bystander = subprocess.Popen(["sleep", "60"])  # not ours: must survive
    # a second classifier worker, started by a configuration `down` is not given
    Stack(full_stack.ctx.settings.model_copy(update={"classify_workers": 2})).up()
    try:
        records = [c.running(full_stack.ctx) for c in full_stack.components]
        records.append(PidFile(full_stack.ctx.root / "run" / "worker-classify-2.pid").live())
        supervisor = PidFile(full_stack.ctx.root / "run" / "supervisor.pid").live()
        assert supervisor is not None
        workers = api_workers(full_stack)
        root = str(full_stack.ctx.root)
        result = reviews_cli(full_stack.ctx.settings, "stack", "down")
        assert result.returncode == 0, result.stderr
        assert processes_mentioning(root) == []
        assert [r.pid for r in records if r.alive()] == []  # gone, or a zombie left for its parent to reap
        assert [pid for pid in workers if Path(f"/proc/{pid}").exists()] == []  # the API's workers too
        assert bystander.poll() is None
        time.sleep(3)  # longer than the supervisor's first backoff: it was stopped first, nothing comes back
        assert processes_mentioning(root) == [] and not supervisor.alive()
        status = reviews_cli(full_stack.ctx.settings, "stack", "status")
        assert status.returncode == 1 and status.stdout.count("stopped") == len(records) - 1
    finally:
        bystander.kill()
        bystander.wait()
