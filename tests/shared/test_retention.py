"""Retention of the run zones, tested by ageing objects: runs whose ids say they started 40 days ago next
to a recent run, in every run zone of a bucket of this module's own, with a curated version beside them."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from celery.schedules import crontab
from prometheus_client.core import CollectorRegistry

from services.publisher.run_gauges import gauges
from shared import retention
from shared.clients import make_s3
from shared.history import History
from shared.history.runs import new_run_id
from shared.lake import (
    LATEST_KEY,
    RUN_ZONES,
    CuratedVersion,
    DeleteRefused,
    Lake,
    cleaned_key,
    curated_key,
    live_ids_key,
    raw_key,
    rejects_key,
    scored_key,
)
from shared.settings import Settings, get_settings
from shared.stages import EXPIRE_TASK

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime.now(UTC)
OLD = new_run_id(NOW - timedelta(days=40))
RECENT = new_run_id(NOW - timedelta(days=2))
DAYS = Settings().lake_retention_days


def put_run(lake, run_id: str, batches: int = 2) -> set[str]:
    """A run's objects in every run zone, as its stages write them; returns their keys."""
    keys = {live_ids_key(run_id)}
    for n in range(1, batches + 1):
        keys |= {raw_key(run_id, n), cleaned_key(run_id, n), rejects_key(run_id, n), scored_key(run_id, n)}
    for key in keys:
        lake.put_bytes(key, b"x" * 100)
    return keys


def put_curated(lake, run_id: str) -> set[str]:
    lake.put_bytes(curated_key(run_id), b"curated")
    lake.set_latest(CuratedVersion(run_id, curated_key(run_id), 1, 7, NOW.isoformat()))
    return {curated_key(run_id), LATEST_KEY}


def everything(lake) -> set[str]:
    return set(lake.list_keys(""))


@pytest.fixture
def lake(own_lake):
    own_lake.delete(own_lake.list_keys(""))
    return own_lake


class FakeRedis:
    def __init__(self):
        self.values: dict[str, bytes] = {}

    def get(self, key: str) -> bytes | None:
        return self.values.get(key)

    def set(self, key: str, value: str) -> None:
        self.values[key] = value.encode()


def test_a_run_id_dates_its_run():
    assert retention.run_started("20261204T121004Z-abc123") == datetime(2026, 12, 4, 12, 10, 4, tzinfo=UTC)
    assert retention.run_started("r1") is None


def test_only_the_runs_past_the_retention_go_and_curated_stays(lake, history):
    old, recent, curated = put_run(lake, OLD, batches=3), put_run(lake, RECENT), put_curated(lake, OLD)
    undated = "raw/run=manual-upload/batch=00001.parquet"  # nothing dates it: kept
    lake.put_bytes(undated, b"x")

    dry = retention.expire(lake, history, DAYS, dry_run=True)
    assert everything(lake) == old | recent | curated | {undated}  # a dry run deletes nothing...
    assert dry.objects() == {"raw": 4, "rejects": 3, "cleaned": 3, "scored": 3}  # ...and says what would go
    assert dry.zones["raw"].runs == [OLD] and dry.zones["raw"].bytes == 400

    done = retention.expire(lake, history, DAYS)
    assert done.objects() == dry.objects() and done.kept_active == []
    assert everything(lake) == recent | curated | {undated}
    assert retention.expire(lake, history, DAYS).objects() == dict.fromkeys(RUN_ZONES, 0)  # nothing left to do


def test_a_run_still_active_is_kept_however_old(lake, history):
    run_id = history.create_run(
        "cli", logical_date=date(1999, 1, 1)
    )  # before any date tests/pipeline hands out  # its id from now
    history.start_run(run_id)
    try:
        keys = put_run(lake, run_id)
        later = NOW + timedelta(days=DAYS + 10)
        expiry = retention.expire(lake, history, DAYS, now=later)
        assert expiry.kept_active == [run_id] and sum(expiry.objects().values()) == 0
        assert everything(lake) == keys
    finally:
        history.fail_run(run_id, "test over")
    assert sum(retention.expire(lake, history, DAYS, now=later).objects().values()) == len(keys)
    assert everything(lake) == set()


def test_the_expiry_measures_the_lake_for_the_publish_workers_gauges(lake, history):
    put_run(lake, OLD)
    put_run(lake, RECENT)
    put_curated(lake, RECENT)
    redis = FakeRedis()
    registry = CollectorRegistry()
    for gauge in gauges(history, lake, redis, Settings()):
        registry.register(gauge)
    assert registry.get_sample_value("pipeline_lake_bytes", {"zone": "raw"}) is None  # none before an expiry

    retention.expire_and_measure(lake, history, redis, DAYS)
    for zone, objects in {"raw": 3, "rejects": 2, "cleaned": 2, "scored": 2, "curated": 2}.items():
        assert registry.get_sample_value("pipeline_lake_objects", {"zone": zone}) == objects
    assert registry.get_sample_value("pipeline_lake_bytes", {"zone": "raw"}) == 300
    oldest = registry.get_sample_value("pipeline_lake_oldest_run_timestamp_seconds")
    assert oldest == retention.run_started(RECENT).timestamp()  # the old run is gone


def test_the_publish_worker_expires_as_its_own_identity_and_the_workers_role(lake, history, servers):
    # beat's daily expiry runs on the publish worker: its S3 identity may delete the run zones, the workers' role
    # reads whether a run is still active; another stage's identity is refused, and says so
    old, recent = put_run(lake, OLD), put_run(lake, RECENT)
    worker = History(servers.worker_metadata_dsn)
    try:
        with pytest.raises(DeleteRefused, match="AccessDenied"):
            retention.expire(Lake(make_s3(servers, "transform"), lake.bucket), worker, DAYS)
        assert everything(lake) == old | recent
        expiry = retention.expire_and_measure(Lake(make_s3(servers, "publish"), lake.bucket), worker, FakeRedis(), DAYS)
    finally:
        worker.close()
    assert sum(expiry.objects().values()) == len(old) and everything(lake) == recent


def test_the_operator_command_shows_per_zone_what_it_removes(lake, history, servers):
    old = put_run(lake, OLD)
    recent = put_run(lake, RECENT)
    env = servers.model_copy(update={"s3_bucket": lake.bucket}).child_env()

    def reviews(*args: str) -> str:
        command = [sys.executable, "-m", "ops.cli", "lake", *args]
        result = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        return result.stdout

    said = reviews("expire", "--dry-run")
    assert "raw      would remove       3 objects            300 bytes of 1 run(s)" in said, said
    assert everything(lake) == old | recent
    said = reviews("expire")
    assert "scored   removed       2 objects            200 bytes of 1 run(s)" in said, said
    assert everything(lake) == recent


def test_the_bucket_lifecycle_states_the_same_rule(own_lake, servers):
    lifecycle = json.loads((ROOT / "deploy" / "s3-lifecycle.json").read_text())
    rules = lifecycle["Rules"]
    assert {rule["Filter"]["Prefix"] for rule in rules} == {f"{zone}/" for zone in RUN_ZONES}  # never curated/
    assert {rule["Expiration"]["Days"] for rule in rules} == {DAYS}
    assert {rule["Status"] for rule in rules} == {"Enabled"}
    admin = make_s3(servers, "admin")  # an S3 API accepts it as it is
    admin.put_bucket_lifecycle_configuration(Bucket=own_lake.bucket, LifecycleConfiguration=lifecycle)
    assert len(admin.get_bucket_lifecycle_configuration(Bucket=own_lake.bucket)["Rules"]) == len(RUN_ZONES)


def test_beat_expires_daily_on_the_publish_worker():
    from services.publisher import tasks
    from shared.celery_app import app

    (entry,) = [e for e in app.conf.beat_schedule.values() if e["task"] == EXPIRE_TASK]
    assert isinstance(entry["schedule"], crontab)  # once a day, half a day from the daily run
    assert entry["schedule"].hour == {(get_settings().daily_run_hour + 12) % 24}
    assert app.conf.task_routes["publish.*"]["queue"] == "publish"
    assert tasks.expire.name == EXPIRE_TASK
