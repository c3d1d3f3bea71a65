"""Leases on batches, on the real run history: a live holder keeps its batch, a dead one loses it to the lease
check, which announces the batch again; the operator sees who died and who took over."""

from __future__ import annotations

import os
import signal
import time
from datetime import UTC, datetime

import psycopg2
import structlog

from ops.runs_cli import format_report, watch
from ops.stack.manager import Stack
from shared.flow import BatchRef, start_run
from shared.history import History
from shared.leases import Renewal
from shared.recovery import reclaim
from shared.stages import Stage
from shared.tasks import send
from tests.pipeline.runs import (
    RUN_TIMEOUT_S,
    Outbox,
    assert_every_valid_review_once,
    component,
    run_to_end,
    wait_for,
)

log = structlog.get_logger()

# No process has this pid (Linux's pid_max is at most 2**22): a holder that is certainly gone.
GONE_PID = 2**22 + 1


def a_classifying_run(history: History, day) -> str:
    """A running run whose batch 1 is transformed, its classification to do."""
    run_id = history.create_run("cli", {}, day)
    history.start_run(run_id)
    history.finish_batch(run_id, Stage.EXTRACT, 1, rows_in=10, rows_out=10, output_key="raw/1")
    history.finish_batch(run_id, Stage.TRANSFORM, 1, rows_in=10, rows_out=10, output_key="cleaned/1")
    history.set_extracted(run_id, 1, 10)
    return run_id


def expire_lease(settings, run_id: str, stage: Stage, batch: int) -> None:
    """The holder stopped renewing a while ago: what a worker killed mid-batch leaves behind."""
    conn = psycopg2.connect(settings.metadata_dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(
                "UPDATE batch SET lease_until = now() - interval '1 second' "
                "WHERE run_id = %s AND stage = %s AND batch_no = %s",
                (run_id, stage.value, batch),
            )
    finally:
        conn.close()


def test_a_batch_held_by_a_live_worker_is_left_to_it(history: History, logical_date):
    run_id = a_classifying_run(history, logical_date)
    first = history.begin_batch(run_id, Stage.CLASSIFY, 1, 3, "cleaned/1", "classify-1@reviews", 101, lease_s=30)
    # when a second delivery of the batch arrives while the first holds it
    second = history.begin_batch(run_id, Stage.CLASSIFY, 1, 3, "cleaned/1", "classify-2@reviews", 202, lease_s=30)
    # then it is told who holds it, and nothing of the batch changes
    assert second.held == "classify-1@reviews pid 101" and not second.already_done
    (batch,) = history.batches(run_id, Stage.CLASSIFY)
    assert (batch["attempts"], batch["worker"], batch["worker_pid"]) == (first.attempts, "classify-1@reviews", 101)


def test_a_dead_holders_batch_is_announced_again_once_and_taken_over(history: History, servers, logical_date):
    # given a batch whose holder was killed: its lease ran out
    run_id = a_classifying_run(history, logical_date)
    history.begin_batch(run_id, Stage.CLASSIFY, 1, 3, "cleaned/1", "classify-1@reviews", GONE_PID, lease_s=30)
    expire_lease(servers, run_id, Stage.CLASSIFY, 1)
    # when the lease check runs, twice
    outbox = Outbox()
    reclaim(history, outbox)
    reclaim(history, outbox)
    # then the batch is announced again once, with what it was reading, and shown lost
    assert outbox.for_run(run_id) == [("classify.batch", 1, "cleaned/1")]
    assert history.stage_summary(run_id)["classify"]["lost"] == 1
    (lost,) = history.lost_batches([run_id])
    assert (lost["worker"], lost["worker_pid"], lost["attempt"], lost["taken_over_at"]) == (
        "classify-1@reviews",
        GONE_PID,
        1,
        None,
    )
    waiting = format_report(history.get_run(run_id), history.stage_summary(run_id), history.lost_batches([run_id]))
    assert "1 lost" in waiting
    assert f"classify batch 1 (attempt 1): classify-1@reviews pid {GONE_PID} died" in waiting
    assert "waiting for a worker" in waiting
    # when another worker takes it, then the hand-over is recorded
    start = history.begin_batch(run_id, Stage.CLASSIFY, 1, 3, "cleaned/1", "classify-2@reviews", 303, lease_s=30)
    assert start.attempts == 2 and start.held is None
    (lost,) = history.lost_batches([run_id])
    assert (lost["taken_over_by"], lost["taken_over_pid"]) == ("classify-2@reviews", 303)
    assert lost["taken_over_at"] >= lost["noticed_at"] > lost["lease_until"]
    report = format_report(history.get_run(run_id), history.stage_summary(run_id), history.lost_batches([run_id]))
    assert "taken over by classify-2@reviews pid 303" in report and "1 running" in report


def test_a_delivery_takes_over_an_expired_lease_before_the_check_notices(history: History, servers, logical_date):
    # the broker's own redelivery may come first: the dead holder is logged all the same
    run_id = a_classifying_run(history, logical_date)
    history.begin_batch(run_id, Stage.CLASSIFY, 1, 3, "cleaned/1", "classify-1@reviews", GONE_PID, lease_s=30)
    expire_lease(servers, run_id, Stage.CLASSIFY, 1)
    start = history.begin_batch(run_id, Stage.CLASSIFY, 1, 3, "cleaned/1", "classify-2@reviews", 404, lease_s=30)
    assert start.attempts == 2
    (lost,) = history.lost_batches([run_id])
    assert (lost["worker_pid"], lost["taken_over_pid"]) == (GONE_PID, 404)
    outbox = Outbox()
    reclaim(history, outbox)  # the new holder's lease is live
    assert outbox.for_run(run_id) == []


def test_an_error_releases_the_lease_without_counting_a_death(history: History, logical_date):
    run_id = a_classifying_run(history, logical_date)
    history.begin_batch(run_id, Stage.CLASSIFY, 1, 3, "cleaned/1", "classify-1@reviews", 101, lease_s=30)
    history.release_lease(run_id, Stage.CLASSIFY, 1, attempt=1)  # the work raised: a retry is on its way
    assert history.begin_batch(run_id, Stage.CLASSIFY, 1, 3, "cleaned/1", "classify-1@reviews", 101, 30).attempts == 2
    assert history.lost_batches([run_id]) == []


def test_a_slow_batch_whose_lease_is_renewed_is_never_announced_again(history: History, logical_date):
    # given a live holder renewing a short lease for three of its lengths
    lease_s = 1.5
    run_id = a_classifying_run(history, logical_date)
    start = history.begin_batch(run_id, Stage.CLASSIFY, 1, 3, "cleaned/1", "classify-1@reviews", 101, lease_s)
    renewal = Renewal(history, Stage.CLASSIFY, run_id, 1, start.attempts, lease_s).start()
    outbox = Outbox()
    try:
        deadline = time.monotonic() + 3 * lease_s
        while time.monotonic() < deadline:
            reclaim(history, outbox)  # the lease check, far more often than beat runs it
            assert history.begin_batch(run_id, Stage.CLASSIFY, 1, 3, "cleaned/1", "classify-2@reviews", 202).held
            time.sleep(0.2)
    finally:
        renewal.stop()
    # then it was never announced again, nor taken over
    assert outbox.for_run(run_id) == []
    (batch,) = history.batches(run_id, Stage.CLASSIFY)
    assert (batch["status"], batch["attempts"], batch["worker_pid"]) == ("running", 1, 101)
    # and once its holder stops renewing, the lease runs out and the check announces it again
    time.sleep(lease_s + 0.2)
    reclaim(history, outbox)
    assert outbox.for_run(run_id) == [("classify.batch", 1, "cleaned/1")]


# --- on the real stack: workers, beat's lease check, the broker -------------------------------------------


def test_a_worker_killed_mid_batch_has_its_batch_announced_again_within_the_bound(pipeline, lake, servers):
    history, stack = pipeline.history, Stack(servers)
    # given a run whose classify worker is working on a batch
    run_id = start_run(history, send, "cli", {"full": True, "limit": 600, "batch_size": 200})
    held = wait_for(
        lambda: next((b for b in history.batches(run_id, Stage.CLASSIFY) if b["status"] == "running"), None),
        180,
        "a classify batch to be held",
        every_s=0.05,
    )
    # when its worker is killed with SIGKILL mid-batch, and restarted as a supervisor would
    os.kill(held["worker_pid"], signal.SIGKILL)
    killed = datetime.now(UTC)
    worker = component(stack, "worker-classify-1")
    wait_for(lambda: worker.running(stack.ctx) is None, 10, "the killed worker to be gone", every_s=0.05)
    stack.up()
    # then the batch is announced again within LEASE_S + LEASE_CHECK_EVERY_S (and beat's pick-up), and taken
    # over by the restarted worker
    lost = wait_for(
        lambda: [b for b in history.lost_batches([run_id]) if b["taken_over_at"]], 120, "another worker to take it"
    )
    run = watch(history, run_id, timeout_s=RUN_TIMEOUT_S)
    assert_every_valid_review_once(pipeline, lake, run)
    (b,) = lost
    assert (b["stage"], b["batch_no"], b["worker_pid"]) == ("classify", held["batch_no"], held["worker_pid"])
    assert b["taken_over_pid"] != held["worker_pid"]
    # (the database's clock and this process's are the same machine's)
    noticed_s = (b["noticed_at"] - killed).total_seconds()
    running_again_s = (b["taken_over_at"] - killed).total_seconds()
    # (beat's tick and the publish worker's pick-up come on top of the bound; on a loaded machine, seconds)
    bound_s = servers.lease_s + servers.lease_check_every_s
    assert noticed_s < bound_s + 10, f"noticed {noticed_s:.1f}s after the kill (bound {bound_s:.0f}s)"
    # how long until it ran again depends on the worker's restart and the batches queued before it: reported
    log.warning("kill_to_reannounce", noticed_s=round(noticed_s, 1), running_again_s=round(running_again_s, 1))


def test_a_delivery_of_a_batch_a_live_worker_holds_does_nothing(pipeline, logical_date):
    from services.transformer.tasks import transform_batch

    history = pipeline.history
    run_id = history.create_run("cli", {}, logical_date)
    history.start_run(run_id)
    history.finish_batch(run_id, Stage.EXTRACT, 1, rows_in=10, rows_out=10, output_key="raw/never-written")
    # given a transform batch held by a live worker elsewhere (its lease renewed)
    start = history.begin_batch(run_id, Stage.TRANSFORM, 1, 3, "raw/never-written", "transform-9@elsewhere", 909, 30)
    renewal = Renewal(history, Stage.TRANSFORM, run_id, 1, start.attempts, pipeline.settings.lease_s).start()
    try:
        # when the stage's task receives the batch again
        result = transform_batch.apply(args=[BatchRef(run_id, 1, "raw/never-written").as_message()])
    finally:
        renewal.stop()
    # then it ends without working (it would have failed reading an object that does not exist)
    assert result.state == "IGNORED"
    (batch,) = history.batches(run_id, Stage.TRANSFORM)
    assert (batch["status"], batch["attempts"], batch["worker_pid"]) == ("running", 1, 909)


def written_at(lake, key: str) -> tuple:
    head = lake.s3.head_object(Bucket=lake.bucket, Key=key)
    return head["ETag"], head["LastModified"]


def test_a_duplicate_delivery_of_a_finished_batch_does_nothing(pipeline, lake):
    run = run_to_end(pipeline, {"full": True, "limit": 60, "batch_size": 30})
    run_id = run["run_id"]
    before = pipeline.history.batches(run_id)
    outputs = [b["output_key"] for b in before if b["stage"] in ("extract", "transform", "classify")]
    written = {key: written_at(lake, key) for key in outputs}
    latest = lake.latest().version
    # when every stage's task is delivered again through the broker, to the real workers
    refs = {b["stage"]: b["input_key"] for b in before if b["batch_no"] == 1}
    results = [
        pipeline.celery.send_task(stage.task, args=[BatchRef(run_id, 1, refs[stage.value] or "").as_message()])
        for stage in (Stage.ARCHIVE, Stage.TRANSFORM, Stage.CLASSIFY)
    ] + [pipeline.celery.send_task(Stage.PUBLISH.task, args=[BatchRef(run_id, 0, "").as_message()])]
    for result in results:
        result.get(timeout=120)
    # then nothing was done again: the history, the objects and the served version are as they were
    after = pipeline.history.batches(run_id)
    assert [(b["stage"], b["batch_no"], b["attempts"], b["finished_at"]) for b in after] == [
        (b["stage"], b["batch_no"], b["attempts"], b["finished_at"]) for b in before
    ]
    assert {key: written_at(lake, key) for key in outputs} == written
    assert lake.latest().version == latest == run_id
