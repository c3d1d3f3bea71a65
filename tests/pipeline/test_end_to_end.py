"""Whole runs on the real local stack: Celery workers per queue, Redis, PostgreSQL, MongoDB-wire, S3.

The source holds real Amazon reviews (../shared/data); runs use ``limit`` to stay quick on
two cores, with the real default model in the classify worker.
"""

from __future__ import annotations

import io
import json
import os
import signal

import pandas as pd
import pymongo
import redis

from ops.runs_cli import format_report, watch
from ops.stack.manager import Stack
from shared.flow import start_run
from shared.lake import CURATED_CHANNEL
from shared.redis_acl import broker_refusals
from shared.stages import Stage
from shared.tasks import BatchRef, send
from tests.pipeline.runs import RUN_TIMEOUT_S, archived, extracted_ids, run_to_end, wait_for


def test_a_run_publishes_every_valid_review_once_and_archives_every_extracted_one(pipeline, lake, servers):
    with redis.Redis.from_url(servers.redis_admin_url, socket_timeout=5) as admin:
        admin.acl_log_reset()
    announcements = pipeline.redis.pubsub()
    announcements.subscribe(CURATED_CHANNEL)

    run = run_to_end(pipeline, {"full": True, "limit": 700, "batch_size": 100})

    summary = pipeline.history.stage_summary(run["run_id"])
    rejects = summary["transform"]["rejects"]
    curated = lake.get_table(run["curated_key"]).to_pandas()
    assert run["source_rows"] == 700 and run["extracted_batches"] == 7
    assert rejects > 0  # the chosen source rows include known-bad ones
    assert len(curated) == run["curated_rows"] == 700 - rejects
    assert curated["review_id"].is_unique
    assert lake.latest().version == run["run_id"]
    # rejects are kept with their reasons
    reject_files = lake.list_keys(f"rejects/run={run['run_id']}/")
    frames = [pd.read_csv(io.BytesIO(lake.get_bytes(k))) for k in reject_files]
    reasons = pd.concat(frames)["reason"]
    assert len(reasons) == rejects and reasons.notna().all()
    # the new version was announced for the API
    wait_for(
        lambda: any(
            m["type"] == "message" and json.loads(m["data"])["version"] == run["run_id"]
            for m in iter(lambda: announcements.get_message(timeout=0.1), None)
        ),
        10,
        "the curated announcement",
    )
    # archive runs beside transform; one document per extracted review, also after a re-run
    ids = extracted_ids(lake, run)
    wait_for(lambda: archived(servers, ids) == 700, 60, "the archive of every extracted review")
    again = run_to_end(pipeline, {"full": True, "limit": 700, "batch_size": 350})
    wait_for(
        lambda: pipeline.history.stage_summary(again["run_id"]).get("archive", {}).get("succeeded") == 2,
        60,
        "the second run's archive",
    )
    assert archived(servers, ids) == 700
    with pymongo.MongoClient(servers.mongo_url) as client:
        doc = client[servers.mongo_db][servers.mongo_collection].find_one({"_id": ids[0]})
    assert doc["run_id"] == again["run_id"] and doc["buyer_id"]
    # every stage ran with the broker's narrowed user (shared/redis_acl.py): Redis refused it nothing
    with redis.Redis.from_url(servers.redis_admin_url, socket_timeout=5) as admin:
        assert broker_refusals(admin) == []


def test_two_classifier_workers_split_a_runs_batches(pipeline, servers):
    two = Stack(servers.model_copy(update={"classify_workers": 2}))
    two.up()  # adds worker-classify-2 only
    try:
        run = run_to_end(pipeline, {"full": True, "limit": 400, "batch_size": 20})
    finally:  # later tests count what classify-1 does
        next(c for c in two.components if c.name == "worker-classify-2").stop(two.ctx)
    workers = {b["worker"] for b in pipeline.history.batches(run["run_id"], Stage.CLASSIFY)}
    assert workers == {"classify-1@reviews", "classify-2@reviews"}


def test_killing_a_worker_mid_batch_loses_no_review_and_duplicates_none(pipeline, lake, servers):
    stack = Stack(servers)
    worker = next(c for c in stack.components if c.name == "worker-classify-1")
    run_id = start_run(pipeline.history, send, "cli", {"full": True, "limit": 600, "batch_size": 150})
    # when the worker dies while it holds a classify batch
    victim = wait_for(
        lambda: next(
            (
                b
                for b in pipeline.history.batches(run_id, Stage.CLASSIFY)
                if b["status"] == "running" and b["worker"] == "classify-1@reviews"
            ),
            None,
        ),
        120,
        "a classify batch running on classify-1",
        every_s=0.05,
    )
    os.killpg(worker.running(stack.ctx).pid, signal.SIGKILL)
    wait_for(lambda: worker.running(stack.ctx) is None, 30, "the killed worker to be gone", every_s=0.05)
    stack.up()  # the operator (or a supervisor) restarts it
    # then Redis redelivers the unacknowledged batch and the run completes
    run = watch(pipeline.history, run_id, timeout_s=RUN_TIMEOUT_S)
    assert run["status"] == "succeeded", format_report(run, pipeline.history.stage_summary(run_id))
    curated = lake.get_table(run["curated_key"]).to_pandas()
    rejects = pipeline.history.stage_summary(run_id)["transform"]["rejects"]
    assert curated["review_id"].is_unique and len(curated) == 600 - rejects
    redone = next(b for b in pipeline.history.batches(run_id, Stage.CLASSIFY) if b["batch_no"] == victim["batch_no"])
    assert redone["attempts"] >= 2


def test_a_failed_stage_fails_the_run_and_keeps_the_previous_version_latest(pipeline, lake):
    before = lake.latest()
    assert before is not None
    # given a run whose only batch points at a raw object that does not exist (a poisoned reference)
    run_id = pipeline.history.create_run("cli", {"test": "poisoned"})
    pipeline.history.start_run(run_id)
    pipeline.history.set_extracted(run_id, 1, 1)
    send("transform.batch", BatchRef(run_id, 1, "raw/run=missing/batch=00001.parquet"))
    # then the batch is dead-lettered (not retried: the same input would fail the same way)
    run = watch(pipeline.history, run_id, timeout_s=60)
    assert run["status"] == "failed" and "transform batch 1 failed" in run["error"]
    (batch,) = pipeline.history.batches(run_id, Stage.TRANSFORM)
    assert batch["status"] == "dead" and batch["retries"] == 0
    assert lake.latest() == before
