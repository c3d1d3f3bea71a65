"""What the real stack tells an operator: JSON log lines with the task's context, each worker's
Prometheus metrics, the archive backlog, and connection errors counted for ``reviews doctor``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ops import doctor
from ops.stack.components import Context, worker_metrics_port
from ops.stack.manager import Stack
from shared import retention
from shared.curated.versions import served_and_previous
from shared.lake import raw_key
from shared.stages import EXPIRE_TASK, Stage
from shared.tasks import BatchRef, send
from tests.pipeline.runs import run_to_end, wait_for

Samples = dict[tuple[str, frozenset], float]


def scrape(settings, queue: Stage) -> Samples:
    """Every sample a worker's /metrics serves, by name and labels."""
    port = worker_metrics_port(settings, queue, 1)
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).raise_for_status().text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def log_path(settings, component: str) -> Path:
    return Context(settings).log(component)


@dataclass(frozen=True)
class ObservedRun:
    run: dict
    summary: dict[str, dict]
    before: dict[Stage, Samples]
    after: dict[Stage, Samples]
    log_lines: dict[str, list[str]]


CELERY_SHUTDOWN_LINES = {"worker: Warm shutdown (MainProcess)", "worker: Cold shutdown (MainProcess)"}
LOGGED = ("worker-extract-1", "worker-transform-1", "worker-classify-1", "worker-publish-1", "api")


@pytest.fixture(scope="module")
def observed(pipeline, servers) -> ObservedRun:
    """One run on the real stack, with the workers' metrics scraped around it, and the logs after it."""
    queues = (Stage.EXTRACT, Stage.TRANSFORM, Stage.CLASSIFY)
    before = {q: scrape(servers, q) for q in queues}
    # the first 700 source rows hold bad ones
    run = run_to_end(pipeline, {"full": True, "limit": 700, "batch_size": 350})
    wait_for(
        lambda: httpx.get(f"{servers.api_base_url}/health/ready", timeout=5).json()["version"] == run["run_id"],
        30,
        "the API to load the new version",
    )  # which it logs
    after = {q: scrape(servers, q) for q in queues}
    lines = {
        name: [line for line in log_path(servers, name).read_text().splitlines() if line.strip()] for name in LOGGED
    }
    return ObservedRun(run, pipeline.history.stage_summary(run["run_id"]), before, after, lines)


def test_workers_and_the_api_write_one_json_object_per_line(observed):
    # every line since the start: also what a worker logs while it starts (clients, the model);
    # but for the one line Celery prints past logging when an earlier test stopped the worker
    for component, lines in observed.log_lines.items():
        for line in lines:
            if line in CELERY_SHUTDOWN_LINES:
                continue
            assert isinstance(json.loads(line), dict), f"{component}: {line!r}"


def test_a_tasks_lines_carry_its_run_stage_batch_and_task_id(observed):
    run_id = observed.run["run_id"]
    for component, stage in (("worker-transform-1", "transform"), ("worker-classify-1", "classify")):
        events = [json.loads(line) for line in observed.log_lines[component] if line not in CELERY_SHUTDOWN_LINES]
        done = [e for e in events if e["event"] == "batch_done" and e.get("run_id") == run_id]
        assert sorted(e["batch"] for e in done) == [1, 2], component
        for event in done:
            assert event["stage"] == stage and event["task_id"] and event["level"] == "info"
        # Celery's own lines about the task ("... succeeded in 0.4s") carry its context too
        ours = [e for e in events if e.get("task_id") in {d["task_id"] for d in done}]
        assert all(e["run_id"] == run_id for e in ours) and len(ours) > len(done)


def test_each_worker_serves_its_task_durations_rows_and_rejects(observed):
    summary = observed.summary

    def delta(queue: Stage, name: str, **labels: str) -> float:
        return value(observed.after[queue], name, **labels) - value(observed.before[queue], name, **labels)

    assert summary["extract"]["rows_in"] == 700
    for queue in (Stage.EXTRACT, Stage.TRANSFORM, Stage.CLASSIFY):
        stage = queue.value
        assert delta(queue, "pipeline_rows_in_total", stage=stage) == summary[stage]["rows_in"]
        assert delta(queue, "pipeline_rows_out_total", stage=stage) == summary[stage]["rows_out"]
    assert delta(Stage.TRANSFORM, "pipeline_rejects_total", stage="transform") == summary["transform"]["rejects"] > 0
    for queue, task, runs in (
        (Stage.TRANSFORM, "transform.batch", 2),
        (Stage.CLASSIFY, "classify.batch", 2),
        (Stage.EXTRACT, "extract.run", 1),
    ):
        labels = {"stage": queue.value, "task": task, "outcome": "success"}
        assert delta(queue, "pipeline_task_seconds_count", **labels) == runs
        assert delta(queue, "pipeline_task_seconds_sum", **labels) > 0


def test_the_archive_worker_shows_the_archive_backlog(pipeline, servers, logical_date):
    def backlog() -> float:
        return value(scrape(servers, Stage.ARCHIVE), "pipeline_archive_backlog_batches")

    # given a batch extracted but not archived yet
    start = backlog()
    run_id = pipeline.history.create_run("cli", {}, logical_date)
    pipeline.history.finish_batch(run_id, Stage.EXTRACT, 1, rows_in=10, rows_out=10, output_key="k")
    assert backlog() == start + 1
    # when its archive is done, then it leaves the backlog
    pipeline.history.finish_batch(run_id, Stage.ARCHIVE, 1, rows_in=10, rows_out=10)
    assert backlog() == start


def test_mongodb_unreachable_counts_retries_and_connection_errors_the_doctor_sees(
    pipeline, servers, lake, observed, logical_date
):
    stack = Stack(servers)
    mongo = next(c for c in stack.components if c.name == "mongo")
    before = scrape(servers, Stage.ARCHIVE)
    # given a raw batch to archive, and MongoDB down
    run_id = pipeline.history.create_run("cli", {}, logical_date)
    key = raw_key(run_id, 1)
    lake.put_bytes(key, lake.get_bytes(raw_key(observed.run["run_id"], 1)))
    mongo.stop(stack.ctx)
    try:
        send("archive.batch", BatchRef(run_id, 1, key))
        # when the archive worker fails to reach it twice
        wait_for(
            lambda: (pipeline.history.batches(run_id, Stage.ARCHIVE) or [{"retries": 0}])[0]["retries"] >= 2,
            90,
            "two archive retries",
        )
        after = scrape(servers, Stage.ARCHIVE)
        rule = doctor.connection_errors(pipeline.redis, max_errors=2, window_s=600)
    finally:
        stack.up()
    # then the worker's metrics count the retries and the errors, and so does Redis for the doctor
    assert (
        value(after, "pipeline_retries_total", stage="archive")
        - value(before, "pipeline_retries_total", stage="archive")
        >= 2
    )
    assert (
        value(after, "pipeline_connection_errors_total", target="mongodb")
        - value(before, "pipeline_connection_errors_total", target="mongodb")
        >= 2
    )
    assert rule.severity == "critical" and "mongodb" in rule.value
    # and the archive completes once MongoDB is back
    wait_for(
        lambda: pipeline.history.batches(run_id, Stage.ARCHIVE)[0]["status"] == "succeeded", 90, "the delayed archive"
    )


def test_flower_asks_for_its_password_and_shows_every_stages_tasks(pipeline, servers):
    flower = f"http://{servers.flower_host}:{servers.flower_port}"
    assert httpx.get(f"{flower}/api/workers", timeout=10).status_code == 401
    run = run_to_end(pipeline, {"full": True, "limit": 60, "batch_size": 30})
    auth = (servers.flower_user, servers.flower_password.get_secret_value())

    def seen() -> set[str]:
        tasks = httpx.get(f"{flower}/api/tasks", params={"limit": 2000}, auth=auth, timeout=10).raise_for_status()
        return {t["name"] for t in tasks.json().values() if run["run_id"] in str(t.get("args"))}

    every_stage = {"extract.run", "archive.batch", "transform.batch", "classify.batch", "publish.run"}
    wait_for(lambda: seen() >= every_stage, 30, "Flower to show the run's tasks of every stage")


def test_the_publish_and_archive_workers_show_runs_durations_and_volumes(observed, pipeline, lake, servers):
    # after the observed run, read at each scrape from the run history, the lake and the archive
    publish, archive = scrape(servers, Stage.PUBLISH), scrape(servers, Stage.ARCHIVE)
    counts = pipeline.history.run_counts()
    for status in ("queued", "running", "succeeded", "failed"):
        assert value(publish, "pipeline_runs", status=status) == counts[status]
    last = pipeline.history.last_finished_run()
    assert value(publish, "pipeline_last_run_failed") == float(last["status"] == "failed")
    judged = pipeline.history.run_duration(servers.alert_run_duration_runs)
    assert value(publish, "pipeline_run_duration_seconds") == pytest.approx(judged.seconds, abs=5)
    pair = served_and_previous(lake)  # none before a second version: no sample, and no alert on it
    shown = {labels: v for (name, labels), v in publish.items() if name == "pipeline_curated_bytes"}
    assert shown == (
        {}
        if pair is None
        else {
            frozenset({("version", "served")}): pair[0].size_bytes,
            frozenset({("version", "previous")}): pair[1].size_bytes,
        }
    )
    assert ("pipeline_retries_exhausted_batches", frozenset()) in publish
    # the lake's volumes as the daily expiry measured them: beat's task, fired here on the publish worker
    pipeline.celery.send_task(EXPIRE_TASK).get(timeout=120)
    publish = scrape(servers, Stage.PUBLISH)
    for zone in ("raw", "cleaned", "scored", "curated"):
        objects, size = lake.usage(f"{zone}/")
        assert 0 < value(publish, "pipeline_lake_objects", zone=zone) <= objects
        assert 0 < value(publish, "pipeline_lake_bytes", zone=zone) <= size
    assert (
        0
        < value(publish, "pipeline_lake_oldest_run_timestamp_seconds")
        <= retention.run_started(observed.run["run_id"]).timestamp()
    )
    assert value(archive, "pipeline_archive_documents") >= 700


def test_a_costly_reading_is_done_at_most_once_in_its_interval():
    from shared.worker_metrics import cached

    calls = []
    reading = cached(lambda: calls.append(1) or len(calls), max_age_s=3600)
    assert [reading(), reading(), reading()] == [1, 1, 1] and len(calls) == 1
