"""The serving files publish writes beside each curated version, on the real S3 server."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from services.publisher.publish import curated_range
from shared.curated import serving
from shared.curated.versions import rollback
from shared.lake import Lake
from shared.serving_format import NAMES, PUBLIC_FIELDS, SERVING_PREFIX, serving_key, version_of
from tests.factories import given_relevance, open_serving, publish_batches, scored_row, scored_table


def rows(*specs: tuple[int, str, float]) -> list[dict]:
    return [scored_row(*spec, buyer_pseudonym="pseudonym-never-served") for spec in specs]


def serving_versions(lake: Lake) -> set[str]:
    return {version_of(key) for key in lake.list_keys(SERVING_PREFIX)}


def test_the_serving_files_hold_each_products_most_relevant_reviews_and_no_buyer(own_lake, tmp_path):
    # given product A with four reviews, B with one, and publish keeping two reviews a product
    batches = [rows((1, "A", 0.2), (2, "A", 0.9), (3, "B", 0.5)), rows((4, "A", 0.7), (5, "A", 0.1))]
    version = publish_batches(own_lake, "20260101T000000Z-serve1", batches, reviews_kept=2).version
    # when the API's way of reading them opens them
    index = open_serving(own_lake, version, tmp_path)
    # then A serves its two most relevant reviews, and its summary counts all four
    answer = json.loads(index.top("A", 50))
    assert [r["review_id"] for r in answer["reviews"]] == [2, 4]
    assert list(answer["reviews"][0]) == list(PUBLIC_FIELDS)
    summary = index.search(None, 10, None)[0][0]
    assert (summary["product_id"], summary["title"], summary["review_count"]) == ("A", "Product A", 4)
    assert (index.rows, index.product_count) == (5, 2)
    # and no byte of any file holds a buyer's pseudonym
    for name in NAMES:
        assert b"pseudonym" not in (tmp_path / f"{name}.arrow").read_bytes()


def test_the_serving_files_are_in_the_lake_before_latest_moves(own_lake, monkeypatch):
    run_id = "20260102T000000Z-serve2"
    seen = []
    set_latest = own_lake.set_latest
    monkeypatch.setattr(
        own_lake, "set_latest", lambda v: (seen.append(serving.exists(own_lake, v.version)), set_latest(v))
    )
    publish_batches(own_lake, run_id, [rows((1, "A", 0.5))])
    assert seen == [True]
    head = own_lake.s3.head_object(Bucket=own_lake.bucket, Key=serving_key(run_id, "reviews"))
    assert len(head["Metadata"]["sha256"]) == 64 and int(head["Metadata"]["size"]) > 0


def test_serving_files_are_pruned_with_their_version(own_lake):
    runs = [f"20260201T00000{i}Z-prune1" for i in range(4)]
    for run_id in runs:
        publish_batches(own_lake, run_id, [rows((1, "A", 0.5))], keep=2)
    assert serving_versions(own_lake) == set(own_lake.curated_versions()) == set(runs[-2:])


def test_a_rollback_to_a_version_without_serving_files_builds_them(own_lake, tmp_path):
    # given an older version published before serving files existed (here: its files deleted)
    old = publish_batches(own_lake, "20260301T000000Z-roll01", [rows((1, "A", 0.4), (2, "A", 0.8))]).version
    publish_batches(own_lake, "20260302T000000Z-roll02", [rows((3, "A", 0.5))])
    own_lake.delete([serving_key(old.version, name) for name in NAMES])
    # when an operator rolls back to it
    version = rollback(own_lake, old.version)
    # then its serving files are back, built from its curated file, before latest names it
    assert own_lake.latest() == version and serving.exists(own_lake, old.version)
    answer = json.loads(open_serving(own_lake, version, tmp_path).top("A", 5))
    assert [r["review_id"] for r in answer["reviews"]] == [2, 1]


def write_curated(path: Path, table: pa.Table, row_group_size: int) -> None:
    pq.write_table(table, path, row_group_size=row_group_size)


def test_a_product_cut_across_row_groups_and_reads_stays_whole(tmp_path, monkeypatch):
    # given a curated file whose product B spans row groups and read batches
    monkeypatch.setattr("shared.curated.RANGE_ROWS", 2)
    table = curated_range(
        scored_table(rows(*[(i, "B", i / 10) for i in range(1, 6)], (6, "A", 0.5), (7, "C", 0.5))), given_relevance
    )
    write_curated(tmp_path / "curated.parquet", table, row_group_size=2)
    # when its serving files are built
    files = serving.build(tmp_path / "curated.parquet", tmp_path, "v", reviews_kept=3)
    # then B is one product with its five reviews counted and three kept
    assert (files.products, files.rows, files.reviews) == (3, 7, 5)


def test_a_curated_file_out_of_product_order_is_refused(tmp_path):
    table = scored_table(rows((1, "B", 0.5), (2, "A", 0.5)))
    write_curated(tmp_path / "curated.parquet", given_relevance(table), row_group_size=10)
    with pytest.raises(serving.NotServable, match="order"):
        serving.build(tmp_path / "curated.parquet", tmp_path, "v", reviews_kept=3)
