"""Least privilege, proven by refusals on the real servers: Redis users, MongoDB users, S3 identities, secrets.

(The PostgreSQL read-only role is proven in tests/ops/test_source.py.)
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
import psycopg2
import pymongo
import pytest
import redis
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError
from pydantic import SecretStr
from pymongo.errors import OperationFailure

from ops.stack.process import free_port
from ops.stack.s3_server import DEPLOYED_BUCKET, GRANTED, grant_lake, lake_policy
from shared.celery_app import BEAT_HEARTBEAT_KEY, CLASSIFIER_FINGERPRINT_KEY
from shared.clients import make_iam, make_s3
from shared.history import History
from shared.history.audit import Actor
from shared.history.runs import RunAlreadyActive
from shared.history.schema import init_metadata_db
from shared.lake import (
    CURATED_CHANNEL,
    LATEST_KEY,
    CuratedVersion,
    Lake,
    cleaned_key,
    curated_key,
    known_key,
    raw_key,
    rejects_key,
    scored_key,
)
from shared.plan import Plan
from shared.redis_acl import API_REDIS_OPTIONS, HANDSHAKE_REFUSAL
from shared.serving_format import NAMES, SERVING_PREFIX, serving_key
from shared.settings import API_SECRETS, BEAT_SECRETS, FLOWER_SECRETS, STAGE_SECRETS, Settings
from shared.stages import Stage
from tests.api.conftest import Publisher, ServerThread, wait_until_served
from tests.factories import publish_batches, scored_row
from tests.pipeline.runs import failed_run

ROOT = Path(__file__).resolve().parents[2]
UNAUTHORIZED, AUTHENTICATION_FAILED = 13, 18


def s3_refusal(call) -> ClientError:
    with pytest.raises(ClientError) as refused:
        call()
    return refused.value


def s3_error(call) -> str:
    return s3_refusal(call).response["Error"]["Code"]


# --- Redis ----------------------------------------------------------------------------------------


def test_redis_refuses_a_client_without_its_password_or_with_a_wrong_one(servers: Settings):
    # The protocol itself, as any client speaks it first: no handshake of a client library in between.
    with socket.create_connection((servers.redis_host, servers.redis_port), timeout=5) as anonymous:
        anonymous.sendall(b"SET stranger 1\r\n")
        assert anonymous.recv(200).startswith(b"-NOAUTH")
    wrong = servers.model_copy(update={"redis_password": SecretStr("not-the-password")})
    with redis.Redis.from_url(wrong.redis_url, socket_timeout=5) as client:
        with pytest.raises(redis.AuthenticationError):
            client.set("stranger", "1")
    with redis.Redis.from_url(servers.redis_url, socket_timeout=5) as client:
        assert client.ping() and client.get("stranger") is None


# What the API's Redis user must not do: a task onto a worker's queue (workers would run it with their write
# credentials), a script, any key, an announcement of its own, the server's configuration and users.
API_REDIS_REFUSED = [
    ("LPUSH", Stage.EXTRACT.queue, "{}"),
    ("RPUSH", Stage.PUBLISH.queue, "{}"),
    ("EVAL", "return redis.call('lpush', KEYS[1], '{}')", "1", Stage.EXTRACT.queue),
    ("EVALSHA", "0" * 40, "0"),
    ("SET", CLASSIFIER_FINGERPRINT_KEY, "forged"),
    ("GET", BEAT_HEARTBEAT_KEY),
    ("DEL", "unacked"),
    ("KEYS", "*"),
    ("FLUSHALL",),
    ("PUBLISH", CURATED_CHANNEL, "{}"),
    ("CONFIG", "SET", "requirepass", "taken-over"),
    ("ACL", "SETUSER", "reviews_api", "+@all"),
]


def api_redis(settings: Settings) -> redis.Redis:
    return redis.Redis.from_url(settings.api_redis_url, socket_timeout=5, **API_REDIS_OPTIONS)


@pytest.mark.parametrize("command", API_REDIS_REFUSED, ids=lambda command: command[0])
def test_the_api_redis_user_cannot_enqueue_run_a_script_or_touch_a_key(servers: Settings, command):
    with api_redis(servers) as api:
        assert api.ping()
        with pytest.raises(redis.exceptions.NoPermissionError):
            api.execute_command(*command)


# What the broker's user (workers, beat, Flower, the operator) must not do, none of which Celery runs: wipe the
# queues and results, reconfigure or stop the server, change users, load code, copy data out, read every key name.
BROKER_REDIS_REFUSED = [
    ("FLUSHALL",),
    ("FLUSHDB",),
    ("CONFIG", "SET", "dir", "/tmp"),
    ("CONFIG", "GET", "*"),
    ("ACL", "SETUSER", "default", "+@all"),
    ("ACL", "LIST"),
    ("DEBUG", "SLEEP", "0"),
    ("SHUTDOWN", "NOSAVE"),
    ("MODULE", "LIST"),
    ("REPLICAOF", "NO", "ONE"),
    ("MIGRATE", "127.0.0.1", "1", "key", "0", "10"),
    ("RESTORE", "restored", "0", "payload"),
    ("SAVE",),
    ("BGREWRITEAOF",),
    ("KEYS", "*"),
    ("CLIENT", "KILL", "TYPE", "normal"),
    ("SWAPDB", "0", "1"),
]


@pytest.mark.parametrize("command", BROKER_REDIS_REFUSED, ids=lambda command: " ".join(command[:2]))
def test_the_broker_redis_user_cannot_wipe_reconfigure_or_stop_redis(servers: Settings, command):
    with redis.Redis.from_url(servers.redis_url, socket_timeout=5) as broker:
        assert broker.ping()
        with pytest.raises(redis.exceptions.NoPermissionError):
            broker.execute_command(*command)
        assert broker.ping()  # still served: nothing ran


def test_the_brokers_only_refusal_on_connecting_is_redis_pys_resp3_handshake(servers: Settings):
    # what broker_refusals leaves out: a RESP3 connection's CLIENT MAINT_NOTIFICATIONS, which RESP2 never asks
    with redis.Redis.from_url(servers.redis_admin_url, socket_timeout=5) as admin:
        for protocol, refused in ((3, [HANDSHAKE_REFUSAL]), (2, [])):
            admin.acl_log_reset()
            with redis.Redis.from_url(servers.redis_url, socket_timeout=5, protocol=protocol) as broker:
                assert broker.ping()
            assert [e["object"] for e in admin.acl_log() if e["username"] == "default"] == refused


def test_the_api_redis_user_hears_the_curated_announcements_and_no_other_channel(servers: Settings):
    with api_redis(servers) as api, redis.Redis.from_url(servers.redis_url, socket_timeout=5) as broker:
        pubsub = api.pubsub()
        pubsub.subscribe(CURATED_CHANNEL)
        assert pubsub.get_message(timeout=5)["type"] == "subscribe"
        broker.publish(CURATED_CHANNEL, "hello")
        assert pubsub.get_message(timeout=5)["data"] == b"hello"
        for subscribe, channel in (("subscribe", "celeryev"), ("psubscribe", "*")):
            other = api.pubsub()
            getattr(other, subscribe)(channel)
            with pytest.raises(redis.exceptions.NoPermissionError):
                other.get_message(timeout=5)
            other.close()
        pubsub.close()


def test_the_api_serves_reloads_and_takes_jobs_without_the_brokers_password(servers: Settings, history_db: Settings):
    # given the API with its own Redis user only, polling S3 once an hour: only an announcement reloads it
    api = history_db.model_copy(
        update={
            "s3_bucket": "least-privilege-api-redis",
            "api_port": free_port(),
            "api_reload_check_s": 3600.0,
            "redis_password": SecretStr(""),
        }
    )
    grant_lake(api)
    publisher = Publisher(history_db.model_copy(update={"s3_bucket": api.s3_bucket}))  # the broker's user
    first = publisher.publish("20260302T000000Z-lpred1", [[scored_row(1, "P", 0.5)]])
    with redis.Redis.from_url(servers.redis_admin_url, socket_timeout=5) as admin:
        admin.acl_log_reset()
    with ServerThread(api) as server, httpx.Client(base_url=server.url, timeout=10) as client:
        wait_until_served(client, first.version)
        # when a new version is published and announced
        second = publisher.publish("20260302T000001Z-lpred2", [[scored_row(2, "P", 0.7)]])
        # then the announcement reaches it, readiness answers, and it still takes a job
        wait_until_served(client, second.version)
        ready = client.get("/health/ready")
        assert ready.status_code == 200 and ready.json()["redis"] is True
        token = {"Authorization": f"Bearer {api.api_token.get_secret_value()}"}
        assert client.post("/jobs", headers=token, json={"limit": 5}).status_code == 202
    # and Redis refused it nothing: it only ever ran what its user allows
    with redis.Redis.from_url(servers.redis_admin_url, socket_timeout=5) as admin:
        assert [e for e in admin.acl_log() if e["username"] == api.api_redis_user] == []


# --- MongoDB --------------------------------------------------------------------------------------


def test_mongodb_refuses_an_unauthenticated_write(servers: Settings):
    with pymongo.MongoClient(f"mongodb://{servers.mongo_host}:{servers.mongo_port}/") as anonymous:
        with pytest.raises(OperationFailure) as refused:
            anonymous[servers.mongo_db][servers.mongo_collection].insert_one({"_id": "anonymous"})
    assert refused.value.code == UNAUTHORIZED


def test_mongodb_refuses_a_wrong_password(servers: Settings):
    wrong = servers.model_copy(update={"mongo_password": SecretStr("not-the-password")})
    with pymongo.MongoClient(wrong.mongo_url, serverSelectionTimeoutMS=5000) as client:
        with pytest.raises(OperationFailure) as refused:
            client[servers.mongo_db][servers.mongo_collection].find_one()
    assert refused.value.code == AUTHENTICATION_FAILED


@pytest.mark.parametrize(
    "attempt",
    [
        pytest.param(lambda c, s: c["elsewhere"]["intrusions"].insert_one({"a": 1}), id="write-another-database"),
        pytest.param(lambda c, s: c.admin["intrusions"].insert_one({"a": 1}), id="write-the-admin-database"),
        pytest.param(
            lambda c, s: c[s.mongo_db].command("createUser", "intruder", pwd="x", roles=["readWrite"]),
            id="create-a-user",
        ),
        pytest.param(
            lambda c, s: c[s.mongo_db].command(
                "grantRolesToUser", s.mongo_user, roles=[{"role": "root", "db": "admin"}]
            ),
            id="grant-itself-root",
        ),
        pytest.param(lambda c, s: c[s.mongo_db].command("dropDatabase"), id="drop-the-archive"),
    ],
)
def test_the_archive_writer_writes_the_archive_and_nothing_else(servers: Settings, attempt):
    with pymongo.MongoClient(servers.mongo_url) as writer:
        archive = writer[servers.mongo_db][servers.mongo_collection]
        archive.replace_one({"_id": "least-privilege-probe"}, {"buyer_id": "probe"}, upsert=True)  # it can write
        archive.delete_one({"_id": "least-privilege-probe"})
        with pytest.raises(OperationFailure) as refused:
            attempt(writer, servers)
    assert refused.value.code == UNAUTHORIZED


API_PROBE = """
import json, sys
from fastapi.testclient import TestClient
from services.api.app import create_app
with TestClient(create_app()) as client:
    ready = client.get("/health/ready")
drivers = sorted(m for m in sys.modules if m.split(".")[0] in ("pymongo", "motor"))
print(json.dumps({"status": ready.status_code, "version": ready.json()["version"], "mongo_drivers": drivers}))
"""


def test_the_api_serves_with_no_mongodb_credential_and_no_pipeline_secret(servers: Settings):
    # given a lake with a curated version, and the API's settings stripped of every MongoDB
    # credential, of the pipeline's and the administrator's S3 secrets, of the run history's owner and of the
    # broker's password, MongoDB's port dead
    lake_settings = servers.model_copy(update={"s3_bucket": "least-privilege-api"})
    grant_lake(lake_settings)
    lake = Lake(make_s3(lake_settings, "operator"), lake_settings.s3_bucket)
    run_id = "20260301T000000Z-lpapi1"
    version = publish_batches(lake, run_id, [[scored_row(1, "P", 0.5)]], keep=1).version
    api = lake_settings.model_copy(
        update={
            "mongo_user": "",
            "mongo_password": SecretStr(""),
            "mongo_admin_user": "",
            "mongo_admin_password": SecretStr(""),
            "mongo_port": free_port(),
            **{f"{identity}_s3_secret_access_key": SecretStr("") for identity in GRANTED if identity != "api"},
            "s3_admin_secret_access_key": SecretStr(""),
            "metadata_password": SecretStr(""),
            "worker_metadata_password": SecretStr(""),
            "redis_password": SecretStr(""),
        }
    )
    # when the API starts in a process of its own
    result = subprocess.run(
        [sys.executable, "-c", API_PROBE], env=api.child_env(), cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    probe = json.loads(result.stdout.strip().splitlines()[-1])
    # then it is ready on that version, read with its own keys, and never loaded a MongoDB driver
    assert (probe["status"], probe["version"]) == (200, version.version)
    assert probe["mongo_drivers"] == [], "the API has no code path to MongoDB"


# --- PostgreSQL: the run history ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def history_db(servers: Settings) -> Settings:
    """A run history of this module's own: the runs it leaves active are no other test's (nor the sweep's)."""
    settings = servers.model_copy(update={"metadata_db": "least_privilege_metadata"})
    init_metadata_db(settings)
    return settings


@pytest.fixture(scope="module")
def owner(history_db: Settings) -> Iterator[History]:
    history = History(history_db.metadata_dsn)
    yield history
    history.close()


@pytest.fixture(scope="module")
def api_role(history_db: Settings) -> Iterator[History]:
    history = History(history_db.api_metadata_dsn)
    yield history
    history.close()


def requests(settings: Settings, run_id: str) -> list[str]:
    with psycopg2.connect(settings.metadata_dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT kind FROM run_request WHERE run_id = %s ORDER BY request_id", (run_id,))
        return [kind for (kind,) in cur.fetchall()]


def test_the_api_role_reads_runs_and_requests_a_queued_run(api_role: History, owner: History, history_db: Settings):
    run_id = api_role.request_run({"limit": 5}, date(2001, 1, 1))
    assert api_role.get_run(run_id)["status"] == "queued" and api_role.list_runs(100)[0]["run_id"] == run_id
    assert api_role.lost_batches([run_id]) == []  # GET /jobs/{id} reads who died mid-batch
    with pytest.raises(RunAlreadyActive):  # the active run's id is read back
        api_role.request_run({}, date(2001, 1, 1))
    run = owner.get_run(run_id)
    assert (run["trigger"], run["params"]) == ("api", {"limit": 5}) and requests(history_db, run_id) == ["start"]


def test_the_api_role_reopens_a_failed_run_with_a_request(api_role: History, owner: History, history_db: Settings):
    run_id = failed_run(owner, date(2001, 1, 2))
    cleared = api_role.reopen_run(run_id, "api", lambda run, later, batches: [(Stage.TRANSFORM, 2)], request=True)
    assert [(b["stage"], b["batch_no"]) for b in cleared] == [("transform", 2)]
    assert owner.get_run(run_id)["status"] == "running" and requests(history_db, run_id) == ["retry"]
    assert [(r["stage"], r["status"]) for r in api_role.retries(run_id)] == [("transform", "dead")]


def test_the_api_role_reopens_nothing_but_a_failed_run(api_role: History, owner: History, history_db: Settings):
    # the retry's function runs as the owner, so it checks what the route's own checks would refuse
    running = owner.create_run("cli", {}, date(2001, 1, 3))
    owner.start_run(running)
    with psycopg2.connect(history_db.api_metadata_dsn) as conn, conn.cursor() as cur:
        with pytest.raises(psycopg2.errors.RaiseException, match="is not failed"):
            cur.execute("SELECT * FROM request_retry(%s, ARRAY['extract'], ARRAY[0])", (running,))
    assert requests(history_db, running) == []


def test_the_api_role_records_and_reads_the_audit_trail_and_changes_none(api_role: History, owner: History):
    api_role.record_action(Actor("operator", "api"), "trigger", "least-privilege-run", "accepted: queued")
    assert api_role.audit_trail(1)[0]["target"] == owner.audit_trail(1)[0]["target"] == "least-privilege-run"


def test_the_api_role_reads_the_workers_heartbeats(api_role: History, owner: History):
    owner.record_heartbeat("api-reads@host", "classify", "host", 1, None)
    assert "api-reads@host" in {h["worker"] for h in api_role.worker_heartbeats()}


@pytest.mark.parametrize(
    "statement",
    [
        "DELETE FROM erasure",
        "SELECT * FROM erasure",
        "INSERT INTO erasure (buyer_pseudonym) VALUES ('x')",
        "UPDATE run SET curated_key = 'curated/forged.parquet'",
        "UPDATE run SET extracted_batches = 0",
        "UPDATE run SET status = 'succeeded'",
        "UPDATE run SET publish_requested_at = now()",
        "UPDATE batch SET status = 'succeeded'",
        "DELETE FROM batch",
        "INSERT INTO batch_retry (run_id, stage, batch_no, trigger, status, attempts, retries) "
        "VALUES ('forged', 'extract', 0, 'api', 'dead', 0, 0)",
        "INSERT INTO run (run_id, logical_date, trigger, status) VALUES ('forged', '2001-02-01', 'api', 'succeeded')",
        # a run or a request of its own making: only through request_run, which pairs them
        "INSERT INTO run (run_id, logical_date, trigger, params) VALUES ('forged', '2001-02-02', 'api', '{}')",
        "INSERT INTO run_request (run_id, kind) VALUES ('forged', 'start')",
        "SELECT * FROM run_request",
        "UPDATE run_request SET claimed_at = NULL",
        "DELETE FROM run_request",
        # the owner's functions the API no longer calls: a retry without its request, the completion barrier
        "SELECT * FROM reopen_failed_run('forged', 'api', ARRAY['extract'], ARRAY[0])",
        "SELECT claim_publish('forged')",
        "INSERT INTO batch (run_id, stage, batch_no, status) VALUES ('forged', 'extract', 0, 'succeeded')",
        "DELETE FROM run",
        "DELETE FROM batch_retry",
        "UPDATE batch_lost SET taken_over_by = 'forged'",
        "DELETE FROM batch_lost",
        "TRUNCATE batch",
        "DROP TABLE erasure",
        "ALTER TABLE run DROP COLUMN error",
        "CREATE TABLE intruder (a int)",
        "UPDATE audit SET outcome = 'forged'",
        "DELETE FROM audit",
        "TRUNCATE audit",
        # the workers' heartbeats: read, never written
        "INSERT INTO worker_heartbeat (worker, stage, last_seen) VALUES ('forged', 'extract', now())",
        "UPDATE worker_heartbeat SET last_seen = now()",
        "DELETE FROM worker_heartbeat",
    ],
)
def test_the_api_role_is_refused_everything_else(history_db: Settings, statement: str):
    with psycopg2.connect(history_db.api_metadata_dsn) as conn, conn.cursor() as cur:
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            cur.execute(statement)


@pytest.fixture(scope="module")
def worker_role(history_db: Settings) -> Iterator[History]:
    history = History(history_db.worker_metadata_dsn)
    yield history
    history.close()


def test_the_worker_role_runs_a_run_from_start_to_end(worker_role: History, owner: History):
    # beat's trigger, extraction, each stage's batch, the completion barrier, the end: all as the workers' role
    run_id = worker_role.create_run("beat", {}, date(2001, 3, 1))
    worker_role.start_run(run_id)
    assert worker_role.set_plan(run_id, Plan("full", "first run")).mode == "full"
    worker_role.cap_watermark(run_id, datetime(2001, 3, 1, tzinfo=UTC))
    worker_role.retry_batch(run_id, Stage.EXTRACT, 0, "source down")  # the extraction's retry placeholder
    for stage in (Stage.EXTRACT, Stage.ARCHIVE, Stage.TRANSFORM, Stage.CLASSIFY):
        worker_role.begin_batch(run_id, stage, 1, 3, "in", "worker")
        worker_role.finish_batch(run_id, stage, 1, rows_in=1, rows_out=1, output_key="out")
    assert worker_role.set_extracted(run_id, 1, 1) == 1
    assert worker_role.claim_publish(run_id)
    worker_role.finish_run(run_id, curated_key(run_id), 1, curated_bytes=1234)
    assert (owner.get_run(run_id)["status"], owner.get_run(run_id)["curated_bytes"]) == ("succeeded", 1234)
    # a worker's heartbeat, added then renewed
    for _ in range(2):
        worker_role.record_heartbeat("least-privilege@host", "transform", "host", 1, None)
    assert [h["worker"] for h in owner.worker_heartbeats()].count("least-privilege@host") == 1
    # a batch that dies fails its run; the sweep and the gauges read the history
    failing = worker_role.create_run("beat", {}, date(2001, 3, 2))
    worker_role.kill_batch(failing, Stage.TRANSFORM, 1, "bad data")
    worker_role.fail_run(failing, "transform batch 1 failed")
    stalled = {run["run_id"] for run in worker_role.stalled_runs(1)}  # other tests' runs may be stalled
    assert not stalled & {run_id, failing} and worker_role.run_counts()["failed"] >= 1
    # erasure requests: the operator adds them as the owner, the workers read them
    owner.add_erasure("least-privilege-pseudonym")
    assert "least-privilege-pseudonym" in worker_role.erased_pseudonyms()


@pytest.mark.parametrize(
    "statement",
    [
        "DELETE FROM erasure",
        "INSERT INTO erasure (buyer_pseudonym) VALUES ('x')",
        "UPDATE erasure SET requested_at = now()",
        "TRUNCATE erasure",
        "TRUNCATE batch",
        "UPDATE run SET publish_requested_at = now()",
        "UPDATE run SET trigger = 'api'",
        "DELETE FROM run",
        "INSERT INTO batch_retry (run_id, stage, batch_no, trigger, status, attempts, retries) "
        "VALUES ('forged', 'extract', 0, 'cli', 'dead', 0, 0)",
        "DELETE FROM batch_retry",
        "SELECT * FROM reopen_failed_run('forged', 'cli', ARRAY['extract'], ARRAY[0])",
        "DROP TABLE erasure",
        "ALTER TABLE run DROP COLUMN error",
        "ALTER TABLE erasure OWNER TO pipeline_worker",
        "CREATE TABLE intruder (a int)",
        "CREATE INDEX intruder ON batch (worker)",
        # heartbeats: its own row written by name, no other column read, none deleted
        "SELECT last_seen FROM worker_heartbeat",
        "DELETE FROM worker_heartbeat",
    ],
)
def test_the_worker_role_is_refused_everything_else(history_db: Settings, statement: str):
    with psycopg2.connect(history_db.worker_metadata_dsn) as conn, conn.cursor() as cur:
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            cur.execute(statement)


# --- S3 --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("identity", GRANTED)
def test_no_identity_has_another_bucket_or_can_make_one(servers: Settings, identity):
    admin, s3, elsewhere = make_s3(servers, "admin"), make_s3(servers, identity), "least-privilege-elsewhere"
    admin.create_bucket(Bucket=elsewhere)
    admin.put_object(Bucket=elsewhere, Key="raw/k", Body=b"x")
    assert s3_error(lambda: s3.get_object(Bucket=elsewhere, Key="raw/k")) == "AccessDenied"
    assert s3_error(lambda: s3.put_object(Bucket=elsewhere, Key="raw/k", Body=b"")) == "AccessDenied"
    assert s3_error(lambda: s3.create_bucket(Bucket="least-privilege-mine")) == "AccessDenied"
    assert s3_error(lambda: s3.list_buckets()) == "AccessDenied"


@pytest.fixture(scope="module")
def zones(own_lake: Lake) -> dict[str, str]:
    """A version published in the module's own bucket, a batch of each run zone beside it: a key of each kind."""
    run_id = "20260301T000000Z-lpzone"
    version = publish_batches(own_lake, run_id, [[scored_row(1, "P", 0.5)]], keep=1).version
    keys = {
        "serving": serving_key(version.version, NAMES[0]),
        "pointer": LATEST_KEY,
        "curated": curated_key(run_id),
        "known": known_key(run_id),
        "raw": raw_key(run_id, 1),
        "rejects": rejects_key(run_id, 1),
        "cleaned": cleaned_key(run_id, 1),
        "scored": scored_key(run_id, 1),
    }
    for zone in RUN_ZONES:
        own_lake.put_bytes(keys[zone], zone.encode())
    assert all(own_lake.exists(key) for key in keys.values())
    return keys


# What each identity's code reads, writes and deletes, zone by zone (the kinds of key of ``zones``): its policy
# allows exactly these. The extractor reads the pointer and checks the version it names (an incremental run's
# base); the classifier reads the base version's known keys; publish reads the raw batches' ids, prunes curated
# versions and deletes expired run zones (beat's daily expiry runs on its worker).
CURATED = {"serving", "pointer", "curated", "known"}
RUN_ZONES = ("raw", "rejects", "cleaned", "scored")
EVERY_ZONE = CURATED | set(RUN_ZONES)
READS = {
    "extract": {"pointer", "curated"},
    "archive": {"raw"},
    "transform": {"raw"},
    "classify": {"cleaned", "known"},
    "publish": {"raw", "scored", *CURATED},
    "operator": EVERY_ZONE,
    "api": {"serving", "pointer"},
}
WRITES = {
    "extract": {"raw"},
    "archive": set(),
    "transform": {"cleaned", "rejects"},
    "classify": {"scored"},
    "publish": CURATED,
    "operator": EVERY_ZONE,
    "api": set(),
}
DELETES = {identity: EVERY_ZONE if identity in ("publish", "operator") else set() for identity in GRANTED}


def allowed(call) -> bool:
    """Whether S3 let ``call`` through: True when it did, False on a refusal; anything else fails the test."""
    try:
        call()
    except ClientError as exc:
        assert exc.response["Error"]["Code"] == "AccessDenied", exc
        return False
    return True


def probe(key: str, identity: str) -> str:
    """A key beside ``key``, in the same zone, that no other test reads."""
    return f"{key}.probe-{identity}"


@pytest.mark.parametrize("identity", GRANTED)
def test_each_identity_reads_exactly_its_zones(servers: Settings, own_lake: Lake, zones, identity):
    s3 = make_s3(servers, identity)
    read = {
        zone for zone, key in zones.items() if allowed(lambda key=key: s3.get_object(Bucket=own_lake.bucket, Key=key))
    }
    assert read == READS[identity]


@pytest.mark.parametrize("identity", GRANTED)
def test_each_identity_writes_exactly_its_zones(servers: Settings, own_lake: Lake, zones, identity):
    s3, probes = make_s3(servers, identity), {zone: probe(key, identity) for zone, key in zones.items()}
    try:
        written = {
            zone
            for zone, key in probes.items()
            if allowed(lambda key=key: s3.put_object(Bucket=own_lake.bucket, Key=key, Body=b"probe"))
        }
        assert written == WRITES[identity]
        assert {zone for zone, key in probes.items() if own_lake.exists(key)} == written  # a refusal wrote nothing
    finally:
        own_lake.delete(list(probes.values()))


@pytest.mark.parametrize("identity", GRANTED)
def test_each_identity_deletes_exactly_where_it_may(servers: Settings, own_lake: Lake, zones, identity):
    s3, probes = make_s3(servers, identity), {zone: probe(key, identity) for zone, key in zones.items()}
    for key in probes.values():
        own_lake.put_bytes(key, b"probe")
    try:
        deleted = {
            zone
            for zone, key in probes.items()
            if allowed(lambda key=key: s3.delete_object(Bucket=own_lake.bucket, Key=key))
        }
        assert deleted == DELETES[identity]
        assert {zone for zone, key in probes.items() if not own_lake.exists(key)} == deleted
    finally:
        own_lake.delete(list(probes.values()))


def test_the_api_reads_the_serving_files_and_the_pointer(servers: Settings, own_lake: Lake, zones):
    api, bucket = make_s3(servers, "api"), own_lake.bucket
    assert api.get_object(Bucket=bucket, Key=zones["serving"])["Body"].read() == own_lake.get_bytes(zones["serving"])
    assert CuratedVersion.from_json(api.get_object(Bucket=bucket, Key=zones["pointer"])["Body"].read())
    assert api.head_object(Bucket=bucket, Key=zones["pointer"])["ContentLength"] > 0  # /health/ready's check
    # a version without serving files is told apart from a refusal (the cache's message names the fix)
    assert s3_error(lambda: api.get_object(Bucket=bucket, Key=serving_key("missing", NAMES[0]))) == "NoSuchKey"


@pytest.mark.parametrize("zone", ["curated", "known", "raw", "cleaned"])
def test_the_api_reads_nothing_else(servers: Settings, own_lake: Lake, zones, zone):
    api = make_s3(servers, "api")
    assert s3_error(lambda: api.get_object(Bucket=own_lake.bucket, Key=zones[zone])) == "AccessDenied"


@pytest.mark.parametrize("zone", ["serving", "pointer", "curated", "raw"])
def test_the_api_writes_and_deletes_nothing(servers: Settings, own_lake: Lake, zones, zone):
    api, bucket, key = make_s3(servers, "api"), own_lake.bucket, zones[zone]
    before = own_lake.get_bytes(key)
    assert s3_error(lambda: api.put_object(Bucket=bucket, Key=key, Body=b"x")) == "AccessDenied"
    assert s3_error(lambda: api.delete_object(Bucket=bucket, Key=key)) == "AccessDenied"
    # a multi-object delete answers 200 and refuses each key
    errors = api.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": key}]})["Errors"]
    assert [e["Code"] for e in errors] == ["AccessDenied"]
    assert own_lake.get_bytes(key) == before


@pytest.mark.parametrize(
    ("forged", "code"),
    [
        ({"operator_s3_access_key_id": "nobody"}, "InvalidAccessKeyId"),
        ({"operator_s3_secret_access_key": SecretStr("not-the-secret")}, "SignatureDoesNotMatch"),
    ],
)
def test_s3_refuses_unknown_keys_and_wrong_secrets(servers: Settings, own_lake: Lake, zones, forged, code):
    s3 = make_s3(servers.model_copy(update=forged), "operator")
    assert s3_error(lambda: s3.get_object(Bucket=own_lake.bucket, Key=zones["pointer"])) == code


def test_s3_refuses_unsigned_requests(servers: Settings, own_lake: Lake, zones):
    anonymous = make_s3(servers, "operator", config=Config(signature_version=UNSIGNED, retries={"max_attempts": 1}))
    bucket = own_lake.bucket
    read = s3_refusal(lambda: anonymous.get_object(Bucket=bucket, Key=zones["pointer"]))
    assert read.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    # moto's IAM check fails on the missing Authorization header (a 500, not a 403): refused all the same
    write = s3_refusal(lambda: anonymous.put_object(Bucket=bucket, Key="raw/anonymous", Body=b"x"))
    assert write.response["ResponseMetadata"]["HTTPStatusCode"] >= 400
    assert s3_error(lambda: make_s3(servers, "operator").head_object(Bucket=bucket, Key="raw/anonymous")) == "404"


@pytest.mark.parametrize("identity", GRANTED)
def test_no_identity_can_grant_itself_more(servers: Settings, identity):
    key_id, secret = servers.s3_credentials(identity)
    # its own keys, in the administrator's place
    iam = make_iam(
        servers.model_copy(update={"s3_admin_access_key_id": key_id, "s3_admin_secret_access_key": SecretStr(secret)})
    )
    with pytest.raises(ClientError) as refused:
        iam.put_user_policy(
            UserName="lake-api", PolicyName="more", PolicyDocument=json.dumps(lake_policy("operator", "*"))
        )
    assert refused.value.response["Error"]["Code"] == "AccessDenied"


def test_the_local_stack_grants_production_documents_for_its_own_bucket():
    policies = {identity: lake_policy(identity, "elsewhere") for identity in GRANTED}
    assert DEPLOYED_BUCKET not in json.dumps(policies)
    for identity in GRANTED:
        deployed = (ROOT / "deploy" / f"{identity}-s3-policy.json").read_text()
        assert policies[identity] == json.loads(deployed.replace(DEPLOYED_BUCKET, "elsewhere"))
    assert sorted(path.name for path in (ROOT / "deploy").glob("*-s3-policy.json")) == sorted(
        f"{identity}-s3-policy.json" for identity in GRANTED
    )
    # the API may read exactly the keys its code reads: the serving files and the pointer
    (read,) = [s for s in policies["api"]["Statement"] if s["Action"] == ["s3:GetObject"]]
    assert read["Resource"] == [f"arn:aws:s3:::elsewhere/{SERVING_PREFIX}*", f"arn:aws:s3:::elsewhere/{LATEST_KEY}"]
    assert {a for s in policies["api"]["Statement"] for a in s["Action"]} == {"s3:GetObject", "s3:ListBucket"}


# --- secrets -----------------------------------------------------------------------------------------

SECRET_SETTING = re.compile(r"(password|_token|_key|key_id)$")
# Shapes of real credentials: an AWS access key id, a private key.
REAL_SECRET = re.compile(rb"AKIA[0-9A-Z]{16}|-----BEGIN [A-Z ]*PRIVATE KEY-----")


def test_every_secret_default_is_a_local_placeholder():
    defaults = {name: field.default for name, field in Settings.model_fields.items() if SECRET_SETTING.search(name)}
    values = {name: d.get_secret_value() if isinstance(d, SecretStr) else d for name, d in defaults.items()}
    assert {name for name, value in values.items() if not str(value).startswith("local-")} == set()
    example = dict(
        line.split("=", 1)
        for line in (ROOT / ".env.example").read_text().splitlines()
        if re.match(r"^[A-Z0-9_]+=", line)
    )
    assert {name.lower(): example[name.upper()] for name in values} == values


def test_no_credential_is_committed():
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    found = [
        path
        for path in tracked.decode().split("\0")
        if path and (ROOT / path).is_file() and REAL_SECRET.search((ROOT / path).read_bytes())
    ]
    assert found == []


def test_the_local_stack_gives_each_service_exactly_the_secrets_it_uses(pipeline, servers: Settings):
    from ops.stack.components import Api, Beat, Flower, Worker
    from ops.stack.manager import Stack

    stack = Stack(servers)
    used_by = {Beat: BEAT_SECRETS, Flower: FLOWER_SECRETS, Api: API_SECRETS}
    secrets = [name for name, field in Settings.model_fields.items() if field.annotation is SecretStr]
    held, used = {}, {}
    for component in stack.components:
        if component.kind != "service":
            continue
        pid = component.running(stack.ctx).pid
        environ = dict(
            item.split("=", 1) for item in Path(f"/proc/{pid}/environ").read_text().split("\0") if "=" in item
        )
        held[component.name] = {name: environ[name.upper()] for name in secrets if environ[name.upper()]}
        names = STAGE_SECRETS[component.queue] if isinstance(component, Worker) else used_by[type(component)]
        used[component.name] = {name: getattr(servers, name).get_secret_value() for name in names}
    assert held == used
    assert {"worker-archive-1", "beat", "flower", "api"} <= set(held)
