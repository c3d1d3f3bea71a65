"""How a run decides to read everything or only what changed, on the real run history and S3."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta

import pytest

from services.extractor.plan import plan_run
from shared.curated.versions import rollback
from shared.plan import Plan, Watermark
from tests.factories import publish_batches, scored_row

_days = (date(1990, 1, 1) + timedelta(days=i) for i in itertools.count())


def published(history, lake, fingerprint: str | None = "classifier-a", watermark: Watermark | None = None) -> str:
    """A succeeded run whose version is the latest: what the next run may build upon."""
    run_id = history.create_run("cli", {}, logical_date=next(_days))
    history.start_run(run_id)
    history.set_plan(run_id, Plan("full", "made by a test"))
    history.set_extracted(run_id, 1, 1, watermark)
    rows = [scored_row(1, "A", 0.5, model_fingerprint=fingerprint or "classifier-a")]
    version = publish_batches(lake, run_id, [rows], keep=100).version  # run ids of one second sort at random
    history.finish_run(run_id, version.key, version.rows, fingerprint, {})
    return run_id


@pytest.fixture
def mark() -> Watermark:
    return Watermark(datetime(2026, 1, 1, tzinfo=UTC), 42)


def test_the_first_run_and_a_run_asked_for_are_full(history, own_lake, mark):
    assert plan_run({}, own_lake, history, "classifier-a").reason == "no curated version yet"
    published(history, own_lake, watermark=mark)
    assert plan_run({"full": True}, own_lake, history, "classifier-a").mode == "full"


def test_a_run_reads_after_the_served_versions_watermark(history, own_lake, mark):
    base = published(history, own_lake, watermark=mark)
    plan = plan_run({}, own_lake, history, "classifier-a")
    assert (plan.mode, plan.base_version, plan.since) == ("incremental", base, mark)
    # the classifier workers not announced yet: the publish step checks the fingerprint again
    assert plan_run({}, own_lake, history, None).mode == "incremental"


def test_another_classifier_makes_the_run_full(history, own_lake, mark):
    published(history, own_lake, watermark=mark)
    plan = plan_run({}, own_lake, history, "classifier-b")
    assert plan.mode == "full" and "classifier changed" in plan.reason


def test_a_version_without_a_watermark_or_without_its_file_makes_the_run_full(history, own_lake, mark):
    published(history, own_lake, watermark=None)  # published before incremental runs existed
    assert "no watermark" in plan_run({}, own_lake, history, "classifier-a").reason
    published(history, own_lake, watermark=mark)
    own_lake.delete([own_lake.latest().key])
    assert "is gone" in plan_run({}, own_lake, history, "classifier-a").reason


def test_after_a_rollback_the_run_builds_on_the_version_served(history, own_lake, mark):
    older = published(history, own_lake, watermark=mark)
    published(history, own_lake, watermark=Watermark(mark.updated_at + timedelta(days=1), 7))
    rollback(own_lake, older)
    plan = plan_run({}, own_lake, history, "classifier-a")
    assert (plan.base_version, plan.since) == (older, mark)  # what changed since is read again
