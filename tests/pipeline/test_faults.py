"""Outages and triggers on the real local stack: what retries, what fails clearly, what is delayed."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pymongo

from ops.runs_cli import format_report, watch
from ops.stack.manager import Stack
from ops.stack.process import free_port
from shared.celery_app import create_celery
from shared.flow import start_run
from shared.stages import Stage
from shared.tasks import send
from tests.pipeline.runs import archived, component, extracted_ids, run_to_end, wait_for


def test_an_unreachable_source_is_retried_with_backoff_then_fails_the_run_clearly(pipeline, servers):
    stack = Stack(servers)
    # given an extract worker whose source server is unreachable (the metadata DB still answers)
    component(stack, "worker-extract-1").stop(stack.ctx)
    unreachable = servers.model_copy(update={"source_port": free_port(), "source_retry_for_s": 10})
    Stack(unreachable).up()  # everything else already runs: only this worker starts, with these settings
    try:
        started = time.monotonic()
        run_id = start_run(pipeline.history, send, "cli", {"limit": 10})
        run = watch(pipeline.history, run_id, timeout_s=120)
        elapsed = time.monotonic() - started
    finally:
        component(stack, "worker-extract-1").stop(stack.ctx)
        stack.up()
    assert run["status"] == "failed"
    assert "extract batch 0 failed" in run["error"] and "Connection refused" in run["error"]
    (extract,) = pipeline.history.batches(run_id, Stage.EXTRACT)
    assert extract["status"] == "dead" and extract["retries"] == 4  # retries_within(10 s): 1 + 2 + 4 + 8
    # backoff waited between the tries: full jitter draws each wait in [0, 1], [0, 2], [0, 4], [0, 8] s,
    # so the total is random (15 s at most); under 1 s has odds below 1 in 1,000, no waiting takes ms
    assert elapsed > 1


def test_mongodb_down_delays_the_archive_but_the_run_publishes(pipeline, lake, servers):
    stack = Stack(servers)
    component(stack, "mongo").stop(stack.ctx)
    try:
        run = run_to_end(pipeline, {"full": True, "limit": 200, "batch_size": 100})
        archive = pipeline.history.stage_summary(run["run_id"])["archive"]
        assert archive["succeeded"] < 2 and archive["retrying"] + archive["running"] > 0  # shown as pending
        assert lake.latest().version == run["run_id"]
    finally:
        stack.up()  # MongoDB is back
    wait_for(
        lambda: pipeline.history.stage_summary(run["run_id"])["archive"]["succeeded"] == 2,
        150,
        "the delayed archive to complete",
    )
    assert archived(servers, extracted_ids(lake, run)) == 200


def test_the_daily_trigger_runs_the_same_task_and_never_twice_at_once(pipeline):
    # beat sends extract.start; two sends for the same day make one run
    celery = pipeline.celery
    first = celery.send_task("extract.start", kwargs={"trigger": "beat", "params": {"limit": 50}})
    second = celery.send_task("extract.start", kwargs={"trigger": "beat", "params": {"limit": 50}})
    run_id = first.get(timeout=60)
    assert second.get(timeout=60) == run_id
    run = watch(pipeline.history, run_id, timeout_s=300)
    assert run["status"] == "succeeded", format_report(run, pipeline.history.stage_summary(run_id))
    assert run["trigger"] == "beat"
    configured = pipeline.settings.model_copy(update={"daily_run_hour": 4, "daily_run_minute": 30})
    schedule = create_celery(configured).conf.beat_schedule["daily-run"]
    assert schedule["task"] == "extract.start" and schedule["kwargs"] == {"trigger": "beat"}
    assert (schedule["schedule"].hour, schedule["schedule"].minute) == ({4}, {30})


def test_reviews_run_shows_progress_and_the_per_stage_time_split(pipeline, servers):
    exe = Path(sys.executable).with_name("reviews")
    result = subprocess.run(
        [str(exe), "run", "--full", "--limit", "120", "--batch-size", "40", "--timeout", "300"],
        env=servers.child_env(),
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "succeeded" in result.stdout and "end to end" in result.stdout
    assert "mode full (a full run was asked for)" in result.stdout
    for stage in ("extract", "archive", "transform", "classify", "publish"):
        assert f"\n  {stage}" in result.stdout
    assert "classify " in result.stderr  # the progress bars
    with pymongo.MongoClient(servers.mongo_url) as client:
        assert client[servers.mongo_db][servers.mongo_collection].estimated_document_count() >= 120
