"""The sweep re-announces what a stalled run waits for (messages lost between a commit and a send)."""

from __future__ import annotations

from shared.history import History
from shared.recovery import sweep
from shared.stages import Stage
from tests.pipeline.runs import Outbox


def test_a_lost_transform_and_classify_are_reannounced(history: History, logical_date):
    # given a run whose batch 1 reached classify, but whose batch 2's transform message was lost
    run_id = history.create_run("cli", {}, logical_date)
    history.start_run(run_id)
    for n in (1, 2):
        history.finish_batch(run_id, Stage.EXTRACT, n, rows_in=10, rows_out=10, output_key=f"raw/{n}")
        history.finish_batch(run_id, Stage.ARCHIVE, n, rows_in=10, rows_out=10)
    history.finish_batch(run_id, Stage.TRANSFORM, 1, rows_in=10, rows_out=10, output_key="cleaned/1")
    history.begin_batch(run_id, Stage.CLASSIFY, 1, 3)  # started, and its worker vanished
    history.set_extracted(run_id, 2, 20)
    outbox = Outbox()
    sweep(history, outbox, stalled_after_s=0)
    assert outbox.for_run(run_id) == [("classify.batch", 1, "cleaned/1"), ("transform.batch", 2, "raw/2")]


def test_a_missed_barrier_is_claimed_and_publish_sent(history: History, logical_date):
    run_id = history.create_run("cli", {}, logical_date)
    history.start_run(run_id)
    history.finish_batch(run_id, Stage.CLASSIFY, 1, rows_in=1, rows_out=1)
    history.set_extracted(run_id, 1, 1)  # every batch classified, nobody claimed publish
    outbox = Outbox()
    sweep(history, outbox, stalled_after_s=0)
    assert outbox.for_run(run_id) == [("publish.run", 0, "")]
    assert history.get_run(run_id)["publish_requested_at"] is not None


def test_an_interrupted_extraction_is_resumed(history: History, logical_date):
    run_id = history.create_run("cli", {}, logical_date)
    history.start_run(run_id)
    outbox = Outbox()
    sweep(history, outbox, stalled_after_s=0)
    assert outbox.for_run(run_id) == [("extract.run", 0, "")]


def test_a_run_that_moves_is_left_alone(history: History, logical_date):
    run_id = history.create_run("cli", {}, logical_date)
    history.start_run(run_id)
    history.begin_batch(run_id, Stage.TRANSFORM, 1, 3)
    outbox = Outbox()
    sweep(history, outbox, stalled_after_s=3600)
    assert outbox.for_run(run_id) == []
