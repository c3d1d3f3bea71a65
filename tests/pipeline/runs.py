"""What the pipeline's tests do with runs: start one and wait for its end, read what it made, build a
failed one by hand, and catch what the sweep or an operator's retry would send."""

from __future__ import annotations

import time

import pymongo

from ops.runs_cli import format_report, watch
from ops.stack.manager import Stack
from shared.flow import start_run
from shared.history import History
from shared.lake import raw_key
from shared.stages import Stage
from shared.tasks import BatchRef, send

RUN_TIMEOUT_S = 420


def run_to_end(pipeline, params: dict) -> dict:
    run_id = start_run(pipeline.history, send, "cli", params)
    run = watch(pipeline.history, run_id, timeout_s=RUN_TIMEOUT_S, interval_s=0.5)
    assert run["status"] == "succeeded", format_report(run, pipeline.history.stage_summary(run_id))
    return run


def wait_for(condition, timeout_s: float, what: str, every_s: float = 0.5):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")


def extracted_ids(lake, run: dict) -> list[int]:
    ids: list[int] = []
    for n in range(1, run["extracted_batches"] + 1):
        ids.extend(lake.get_table(raw_key(run["run_id"], n)).column("review_id").to_pylist())
    return ids


def archived(servers, ids: list[int]) -> int:
    with pymongo.MongoClient(servers.mongo_url) as client:
        return client[servers.mongo_db][servers.mongo_collection].count_documents({"_id": {"$in": ids}})


def component(stack: Stack, name: str):
    return next(c for c in stack.components if c.name == name)


def assert_every_valid_review_once(pipeline, lake, run: dict) -> None:
    assert run["status"] == "succeeded", format_report(run, pipeline.history.stage_summary(run["run_id"]))
    curated = lake.get_table(run["curated_key"]).column("review_id").to_pylist()
    rejects = pipeline.history.stage_summary(run["run_id"])["transform"]["rejects"]
    extracted = extracted_ids(lake, run)
    assert len(extracted) == len(set(extracted)) == run["source_rows"]
    assert len(curated) == len(set(curated)) == run["source_rows"] - rejects
    assert set(curated) <= set(extracted)


class Outbox:
    """A ``send`` that keeps what it is given, for the test to read instead of a broker."""

    def __init__(self):
        self.sent: list[tuple[str, BatchRef]] = []

    def __call__(self, task: str, ref: BatchRef) -> None:
        self.sent.append((task, ref))

    def for_run(self, run_id: str) -> list[tuple[str, int, str]]:
        return sorted((task, ref.batch, ref.key) for task, ref in self.sent if ref.run_id == run_id)


def failed_run(history: History, day, batches: int = 3) -> str:
    """A run that extracted ``batches`` batches, all archived, transformed and classified but batch 2,
    whose transform failed for good (and failed the run)."""
    run_id = history.create_run("cli", {}, day)
    history.start_run(run_id)
    for n in range(1, batches + 1):
        history.finish_batch(run_id, Stage.EXTRACT, n, rows_in=10, rows_out=10, output_key=f"raw/{n}")
        history.finish_batch(run_id, Stage.ARCHIVE, n, rows_in=10, rows_out=10)
        if n == 2:
            history.begin_batch(run_id, Stage.TRANSFORM, n, 3, input_key=f"raw/{n}")
            history.kill_batch(run_id, Stage.TRANSFORM, n, "ArrowInvalid('Parquet magic bytes not found')")
            history.fail_run(run_id, "transform batch 2 failed: ArrowInvalid(...)")
            continue
        history.finish_batch(run_id, Stage.TRANSFORM, n, rows_in=10, rows_out=9, rejects=1, output_key=f"cleaned/{n}")
        history.finish_batch(run_id, Stage.CLASSIFY, n, rows_in=9, rows_out=9, output_key=f"scored/{n}")
    history.set_extracted(run_id, batches, 10 * batches)
    return run_id
