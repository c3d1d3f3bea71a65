"""An operator's retry of a failed run: what it clears, what it keeps, what it refuses, and a real
run killed by a poisoned input that succeeds once the cause is fixed and it is retried."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg2
import pymongo
import pytest

from ops.runs_cli import format_report, watch
from ops.stack.manager import Stack
from shared.flow import start_run
from shared.history import History
from shared.history.batches import BatchDead
from shared.history.runs import RunNotFound
from shared.lake import curated_key, raw_key
from shared.plan import Plan, Watermark, plan_of
from shared.recovery import RetryRefused, retry_run, sweep
from shared.stages import Stage
from shared.tasks import send
from tests.pipeline.runs import (
    RUN_TIMEOUT_S,
    Outbox,
    assert_every_valid_review_once,
    component,
    failed_run,
    wait_for,
)


def test_a_failed_batch_is_cleared_and_announced_and_what_succeeded_is_kept(history: History, logical_date):
    run_id = failed_run(history, logical_date)
    outbox = Outbox()
    retried = retry_run(history, outbox, run_id, "cli")
    # the dead batch is announced again with its input; the rest is kept as it was
    assert [(b["stage"], b["batch_no"], b["status"]) for b in retried.cleared] == [("transform", 2, "dead")]
    assert outbox.for_run(run_id) == [("transform.batch", 2, "raw/2")]
    run = history.get_run(run_id)
    assert run["status"] == "running" and run["error"] is None and run["finished_at"] is None
    kept = {(b["stage"], b["batch_no"]) for b in history.batches(run_id)}
    assert ("classify", 1) in kept and ("classify", 3) in kept and ("transform", 2) not in kept
    (logged,) = history.retries(run_id)
    assert logged["trigger"] == "cli" and "magic bytes" in logged["last_error"] and logged["attempts"] == 1
    # when the re-run batch goes through, the barrier fires once
    history.finish_batch(run_id, Stage.TRANSFORM, 2, rows_in=10, rows_out=10, output_key="cleaned/2")
    assert not history.claim_publish(run_id)  # classify 2 still to do
    history.finish_batch(run_id, Stage.CLASSIFY, 2, rows_in=10, rows_out=10, output_key="scored/2")
    assert [history.claim_publish(run_id) for _ in range(3)] == [True, False, False]


def test_a_dead_lettered_batch_gets_a_fresh_attempt_budget(history: History, logical_date):
    # given a batch whose deliveries kept dying until it was dead-lettered
    run_id = history.create_run("cli", {}, logical_date)
    history.start_run(run_id)
    history.finish_batch(run_id, Stage.TRANSFORM, 1, rows_in=5, rows_out=5, output_key="cleaned/1")
    for _ in range(2):
        history.begin_batch(run_id, Stage.CLASSIFY, 1, max_attempts=2)  # the worker died in each
    with pytest.raises(BatchDead):
        history.begin_batch(run_id, Stage.CLASSIFY, 1, max_attempts=2)
    history.fail_run(run_id, "classify batch 1 failed: BatchDead")
    # when it is retried, then it is announced and may start again
    outbox = Outbox()
    retry_run(history, outbox, run_id, "api")
    assert outbox.for_run(run_id) == [("classify.batch", 1, "cleaned/1")]
    start = history.begin_batch(run_id, Stage.CLASSIFY, 1, max_attempts=2)
    assert start.attempts == 1 and not start.already_done
    assert history.retries(run_id)[0]["attempts"] == 2


def test_a_named_batch_that_succeeded_is_re_run_with_its_downstream(history: History, logical_date):
    # given a run whose classify batch 1 died on the cleaned file its transform wrote
    run_id = history.create_run("cli", {}, logical_date)
    history.start_run(run_id)
    history.finish_batch(run_id, Stage.EXTRACT, 1, rows_in=5, rows_out=5, output_key="raw/1")
    history.finish_batch(run_id, Stage.TRANSFORM, 1, rows_in=5, rows_out=5, output_key="cleaned/1")
    history.kill_batch(run_id, Stage.CLASSIFY, 1, "ArrowInvalid('bad cleaned file')")
    history.fail_run(run_id, "classify batch 1 failed")
    # when the operator re-runs it from the transform
    outbox = Outbox()
    retried = retry_run(history, outbox, run_id, "cli", Stage.TRANSFORM, 1)
    # then the transform is announced, and the classify after it is cleared to follow it
    assert [(b["stage"], b["status"]) for b in retried.cleared] == [("transform", "succeeded"), ("classify", "dead")]
    assert outbox.for_run(run_id) == [("transform.batch", 1, "raw/1")]


def test_a_failed_publish_is_claimed_and_sent_again(history: History, logical_date):
    run_id = history.create_run("cli", {}, logical_date)
    history.start_run(run_id)
    history.finish_batch(run_id, Stage.CLASSIFY, 1, rows_in=5, rows_out=5, output_key="scored/1")
    history.set_extracted(run_id, 1, 5)
    assert history.claim_publish(run_id)
    history.kill_batch(run_id, Stage.PUBLISH, 0, "ClientError('AccessDenied')")
    history.fail_run(run_id, "publish batch 0 failed")
    outbox = Outbox()
    assert retry_run(history, outbox, run_id, "cli").announced == ["publish"]
    assert outbox.for_run(run_id) == [("publish.run", 0, "")]
    assert history.get_run(run_id)["publish_requested_at"] is not None


def test_a_failed_extraction_resumes_with_the_plan_it_recorded(history: History, logical_date):
    # given an incremental run whose extraction failed after its first batch
    run_id = history.create_run("cli", {}, logical_date)
    history.start_run(run_id)
    since = Watermark(datetime(2026, 1, 1, tzinfo=UTC), 42)
    planned = history.set_plan(run_id, Plan("incremental", "what changed", "20260101T000000Z-base00", since))
    history.finish_batch(run_id, Stage.EXTRACT, 1, rows_in=5, rows_out=5, output_key="raw/1")
    history.kill_batch(run_id, Stage.EXTRACT, 0, "OperationalError('connection refused')")
    history.fail_run(run_id, "extract batch 0 failed")
    outbox = Outbox()
    assert retry_run(history, outbox, run_id, "cli", Stage.EXTRACT).announced == ["extract"]
    assert outbox.for_run(run_id) == [("extract.run", 0, "")]
    # then the resumed extraction keeps the run's plan, whatever the source's served version is by then
    assert history.set_plan(run_id, Plan("full", "a later plan")) == planned == plan_of(history.get_run(run_id))
    assert [b["batch_no"] for b in history.extracted_batches(run_id)] == [1]


def test_what_cannot_be_retried_is_refused_with_the_reason(history: History, logical_date):
    outbox = Outbox()
    with pytest.raises(RunNotFound):
        retry_run(history, outbox, "no-such-run", "cli")
    running = history.create_run("cli", {}, logical_date)
    history.start_run(running)
    with pytest.raises(RetryRefused, match="is running: only a failed run is retried"):
        retry_run(history, outbox, running, "cli")
    history.finish_run(running, "curated/x.parquet", 1)
    with pytest.raises(RetryRefused, match="is succeeded"):
        retry_run(history, outbox, running, "cli")
    failed = failed_run(history, logical_date)
    with pytest.raises(RetryRefused, match=r"no failed batch to retry there \(failed batches: transform batch 2\)"):
        retry_run(history, outbox, failed, "cli", Stage.CLASSIFY)
    with pytest.raises(RetryRefused, match="one snapshot"):
        retry_run(history, outbox, failed, "cli", Stage.EXTRACT, 2)
    # a batch still in flight is not cleared under its worker
    history.begin_batch(failed, Stage.CLASSIFY, 2, 3)
    with pytest.raises(RetryRefused, match="in flight"):
        retry_run(history, outbox, failed, "cli")
    history.kill_batch(failed, Stage.CLASSIFY, 2, "stopped by the test")
    # a run started after it and succeeded: retrying would publish older data over it
    later = history.create_run("cli", {}, logical_date + timedelta(days=3650))
    history.start_run(later)
    history.finish_run(later, "curated/y.parquet", 1)
    with pytest.raises(RetryRefused, match=f"run {later} \\(succeeded\\) was started after"):
        retry_run(history, outbox, failed, "cli")
    assert outbox.sent == [] and history.get_run(failed)["status"] == "failed"
    assert history.retries(failed) == []


def test_two_failed_runs_of_one_date_are_not_both_running_again(history: History, logical_date):
    first = failed_run(history, logical_date)
    second = failed_run(history, logical_date)  # a failed run does not hold its date
    retry_run(history, Outbox(), first, "cli")
    with pytest.raises(RetryRefused, match=f"another run for {logical_date} is queued or running"):
        retry_run(history, Outbox(), second, "cli")
    assert history.get_run(second)["status"] == "failed"


def test_the_sweep_leaves_a_just_retried_run_alone(history: History, logical_date, servers):
    # given a failed run whose batches all ended two hours ago
    run_id = failed_run(history, logical_date)
    with psycopg2.connect(servers.metadata_dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "UPDATE batch SET started_at = started_at - interval '2 hours', "
            "finished_at = finished_at - interval '2 hours' WHERE run_id = %s",
            (run_id,),
        )
        cur.execute("UPDATE run SET started_at = started_at - interval '2 hours' WHERE run_id = %s", (run_id,))
    conn.close()
    # when it is retried, then the sweep takes the retry for activity and sends nothing twice
    retry_run(history, Outbox(), run_id, "cli")
    outbox = Outbox()
    sweep(history, outbox, stalled_after_s=3600)
    assert outbox.for_run(run_id) == []
    # but a retry whose announcement got lost is repaired like any stalled run
    sweep(history, outbox, stalled_after_s=0)
    assert outbox.for_run(run_id) == [("transform.batch", 2, "raw/2")]


# --- on the real stack --------------------------------------------------------------------------


def test_a_batch_killed_by_a_poisoned_input_is_retried_once_fixed_and_the_run_publishes_once(pipeline, lake, servers):
    stack = Stack(servers)
    readers = [component(stack, name) for name in ("worker-transform-1", "worker-archive-1")]
    # given a run whose batch 2 raw file is poisoned (truncated) before the stages that read it get it
    for worker in readers:
        worker.stop(stack.ctx)
    try:
        run_id = start_run(pipeline.history, send, "cli", {"full": True, "limit": 300, "batch_size": 100})
        wait_for(lambda: pipeline.history.get_run(run_id)["extracted_batches"], 120, "the extraction")
        good = lake.get_bytes(raw_key(run_id, 2))
        lake.put_bytes(raw_key(run_id, 2), good[: len(good) // 2])
    finally:
        stack.up()
    # then batch 2 is dead at once (the same bytes fail every time: not retried), and the run failed
    failed = watch(pipeline.history, run_id, timeout_s=RUN_TIMEOUT_S)
    assert failed["status"] == "failed" and "transform batch 2 failed" in failed["error"]
    wait_for(
        lambda: (
            pipeline.history.stage_summary(run_id)["classify"]["succeeded"] == 2
            and all(b["status"] in ("succeeded", "dead") for b in pipeline.history.batches(run_id))
        ),
        120,
        "the other batches",
    )
    dead = {(b["stage"], b["batch_no"]) for b in pipeline.history.batches(run_id) if b["status"] == "dead"}
    assert dead == {("transform", 2), ("archive", 2)}
    # when the cause is fixed (the raw file restored) and the operator retries the run
    lake.put_bytes(raw_key(run_id, 2), good)
    exe = Path(sys.executable).with_name("reviews")
    result = subprocess.run(
        [str(exe), "retry", run_id, "--timeout", str(RUN_TIMEOUT_S)],
        env=servers.child_env(),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S + 60,
    )
    # then only batch 2 is done again, the run succeeds with every valid review once, published once
    assert result.returncode == 0, result.stdout + result.stderr
    assert "announced: archive batch 2, transform batch 2" in result.stdout
    run = pipeline.history.get_run(run_id)
    assert_every_valid_review_once(pipeline, lake, run)
    assert run["curated_key"] == curated_key(run_id) and lake.latest().version == run_id
    batches = pipeline.history.batches(run_id)
    assert all(b["attempts"] == 1 for b in batches if b["stage"] in ("classify", "publish")), format_report(
        run, pipeline.history.stage_summary(run_id)
    )
    assert [(b["stage"], b["batch_no"]) for b in pipeline.history.retries(run_id)] == [("archive", 2), ("transform", 2)]
    wait_for(
        lambda: (
            next(b for b in pipeline.history.batches(run_id, Stage.ARCHIVE) if b["batch_no"] == 2)["status"]
            == "succeeded"
        ),
        60,
        "the archive of batch 2",
    )
    ids = lake.get_table(raw_key(run_id, 2)).column("review_id").to_pylist()
    with pymongo.MongoClient(servers.mongo_url) as client:
        assert client[servers.mongo_db][servers.mongo_collection].count_documents({"_id": {"$in": ids}}) == len(ids)
