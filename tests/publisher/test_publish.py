"""Publish on the real S3 server: merge, sort, atomic latest pointer, retention."""

from __future__ import annotations

import json

import pytest

from services.publisher.publish import DuplicateReviews, publish
from shared.lake import LATEST_KEY, curated_key
from shared.schemas import CURATED
from tests.factories import put_scored_batches, scored_row


def put_batches(lake, run_id: str, batches: list[list[tuple[int, str, float]]]) -> list[str]:
    return put_scored_batches(lake, run_id, [[scored_row(*row) for row in rows] for rows in batches])


def test_publish_merges_sorts_and_moves_latest(own_lake):
    batches = [[(1, "B", 0.2), (2, "A", 0.1)], [(3, "A", 0.9), (4, "B", 0.8)]]
    keys = put_batches(own_lake, "20260101T000000Z-aaaaaa", batches)
    version = publish(own_lake, "20260101T000000Z-aaaaaa", keys, keep=3)
    table = own_lake.get_table(version.key)
    assert table.schema.equals(CURATED)
    assert table.column("review_id").to_pylist() == [3, 2, 4, 1]  # by product, then relevance descending
    assert own_lake.latest() == version and version.rows == 4


def test_duplicates_are_never_published_and_latest_stays(own_lake):
    before = own_lake.latest()
    keys = put_batches(own_lake, "20260102T000000Z-bbbbbb", [[(1, "A", 0.5)], [(1, "A", 0.5)]])
    with pytest.raises(DuplicateReviews):
        publish(own_lake, "20260102T000000Z-bbbbbb", keys, keep=3)
    assert own_lake.latest() == before
    assert not own_lake.exists(curated_key("20260102T000000Z-bbbbbb"))


def test_only_the_newest_versions_are_kept(own_lake):
    runs = [f"20260201T00000{i}Z-cccccc" for i in range(5)]
    for run_id in runs:
        publish(own_lake, run_id, put_batches(own_lake, run_id, [[(1, "A", 0.5)]]), keep=2)
    kept = [v for v in own_lake.curated_versions() if v.startswith("20260201")]
    assert kept == runs[-2:]
    assert json.loads(own_lake.get_bytes(LATEST_KEY))["version"] == runs[-1]
