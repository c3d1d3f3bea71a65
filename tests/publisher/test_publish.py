"""Publish on the real S3 server: a full run's file, an incremental run's merge, the latest pointer, retention."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import partial

import numpy as np
import pyarrow as pa
import pytest

from services.publisher import publish as publish_module
from services.publisher.publish import (
    Base,
    ClassifierChanged,
    DuplicateReviews,
    OutputsMissing,
    product_ranges,
    publish,
)
from shared import known
from shared.lake import LATEST_KEY, curated_key, known_key
from shared.relevance import relevance
from shared.schemas import CURATED, SCORED
from shared.serving_format import NAMES, serving_key
from shared.settings import Settings
from tests.factories import given_relevance, mentions, publish_batches, put_scored_batches, scored_row, scored_table


def rows(*specs: tuple[int, str, float]) -> list[dict]:
    return [scored_row(*spec) for spec in specs]


def test_publish_merges_sorts_and_moves_latest(own_lake):
    batches = [rows((1, "B", 0.2), (2, "A", 0.1)), rows((3, "A", 0.9), (4, "B", 0.8))]
    published = publish_batches(own_lake, "20260101T000000Z-aaaaaa", batches, keep=3)
    version = published.version
    table = own_lake.get_table(version.key)
    assert table.schema.equals(CURATED)
    assert table.column("review_id").to_pylist() == [3, 2, 4, 1]  # by product, then relevance descending
    assert own_lake.latest() == version and version.rows == 4
    head = own_lake.s3.head_object(Bucket=own_lake.bucket, Key=version.key)
    assert head["Metadata"]["rows"] == "4"  # what a rollback reads instead of the file
    # the version's size, recorded in the run history for the API (which may not read these objects): every
    # curated object its publish wrote
    written = [version.key, known_key(version.version)] + [serving_key(version.version, name) for name in NAMES]
    assert published.curated_bytes == sum(own_lake.head(key).size_bytes for key in written) > version.size_bytes


def test_duplicates_are_never_published_and_latest_stays(own_lake):
    before = own_lake.latest()
    with pytest.raises(DuplicateReviews):
        publish_batches(own_lake, "20260102T000000Z-bbbbbb", [rows((1, "A", 0.5)), rows((1, "A", 0.5))], keep=3)
    assert own_lake.latest() == before
    assert not own_lake.exists(curated_key("20260102T000000Z-bbbbbb"))


def test_only_the_newest_versions_are_kept(own_lake):
    runs = [f"20260201T00000{i}Z-cccccc" for i in range(5)]
    for run_id in runs:
        publish_batches(own_lake, run_id, [rows((1, "A", 0.5))], keep=2)
    kept = [v for v in own_lake.curated_versions() if v.startswith("20260201")]
    assert kept == runs[-2:]
    assert [own_lake.exists(known_key(run_id)) for run_id in runs] == [False] * 3 + [True] * 2  # pruned with them
    assert json.loads(own_lake.get_bytes(LATEST_KEY))["version"] == runs[-1]


def curated(lake, version) -> dict[int, dict]:
    return {r["review_id"]: r for r in lake.get_table(version.key).to_pylist()}


def test_an_incremental_publish_keeps_replaces_adds_and_removes_what_the_run_says(own_lake, monkeypatch):
    # given a base version, read back two rows at a time so that products span the ranges
    monkeypatch.setattr("shared.curated.RANGE_ROWS", 2)
    base = publish_batches(
        own_lake,
        "20260301T000000Z-base01",
        [
            rows(
                (1, "A", 0.9),
                (2, "A", 0.8),
                (3, "A", 0.7),
                (4, "B", 0.6),
                (5, "B", 0.5),
                (6, "C", 0.4),
                (9, "E", 0.3),
            )
        ],
    ).version
    # review 5's buyer asked to be forgotten after the base was published
    forgotten = "pseudo-forgotten"
    base_rows = own_lake.get_table(base.key).to_pylist()
    base_rows[4]["buyer_pseudonym"] = forgotten
    own_lake.put_table(base.key, pa.Table.from_pylist(base_rows, schema=CURATED))
    # when a run read review 2 edited, review 6 now rejected (no delta row), reviews 7 (product B)
    # and 8 (a new product D) new, while review 3 was deleted from the source
    delta = put_scored_batches(
        own_lake,
        "20260302T000000Z-incr01",
        [
            rows((2, "A", 0.95)),
            rows((7, "B", 0.55), (8, "D", 0.1)),
        ],
    )
    spec = Base(
        key=base.key,
        fingerprint="test-classifier",
        reread_ids=np.array([2, 6, 7, 8]),
        live_ids=np.array([1, 2, 4, 5, 6, 7, 8, 9]),
    )
    result = publish(own_lake, "20260302T000000Z-incr01", delta, 5, given_relevance, frozenset({forgotten}), spec)
    # then the new version holds the carried, replaced and added reviews, by product then relevance
    table = own_lake.get_table(result.version.key)
    assert table.column("review_id").to_pylist() == [2, 1, 4, 7, 8, 9]
    assert curated(own_lake, result.version)[2]["rel_model"] == pytest.approx(0.95)
    assert result.changes.as_dict() == {
        "base_rows": 7,
        "delta_rows": 3,
        "carried": 3,
        "replaced": 1,
        "added": 2,
        "deleted": 1,
        "withdrawn": 1,
        "erased": 1,
        "outputs_reused": 0,
    }
    assert result.version.rows == 6 == table.num_rows and own_lake.latest() == result.version


def test_an_incremental_run_with_no_change_publishes_the_same_content(own_lake):
    score = partial(relevance, settings=Settings(), as_of=datetime(2026, 3, 1, tzinfo=UTC))
    keys = put_scored_batches(
        own_lake,
        "20260401T000000Z-full01",
        [
            rows(
                (1, "A", 0.2),
                (2, "A", 0.9),
                (3, "B", 0.5),
            )
        ],
    )
    first = publish(own_lake, "20260401T000000Z-full01", keys, 5, score).version
    spec = Base(first.key, "test-classifier", np.zeros(0, dtype=np.int64), np.array([1, 2, 3]))
    second = publish(own_lake, "20260402T000000Z-incr01", [], 5, score, base=spec)
    assert own_lake.get_table(second.version.key).equals(own_lake.get_table(first.key))
    assert second.changes.carried == 3 and second.fingerprint == "test-classifier"


def test_a_version_never_mixes_two_classifiers(own_lake):
    before = own_lake.latest()
    mixed = [rows((1, "A", 0.5)), [scored_row(2, "A", 0.5, model_fingerprint="another-classifier")]]
    with pytest.raises(ClassifierChanged):
        publish_batches(own_lake, "20260501T000000Z-mixed1", mixed)
    base = publish_batches(own_lake, "20260502T000000Z-base02", [rows((1, "A", 0.5))]).version
    delta = put_scored_batches(
        own_lake, "20260503T000000Z-incr02", [[scored_row(2, "A", 0.5, model_fingerprint="new")]]
    )
    spec = Base(base.key, "test-classifier", np.array([2]), np.array([1, 2]))
    with pytest.raises(ClassifierChanged, match="full run"):
        publish(own_lake, "20260503T000000Z-incr02", delta, 5, given_relevance, base=spec)
    assert own_lake.latest().version == "20260502T000000Z-base02" != before


def test_a_review_read_again_unchanged_takes_its_outputs_from_the_base(own_lake, monkeypatch):
    # given a base version whose keys are written beside it, read back two rows at a time
    monkeypatch.setattr("shared.curated.RANGE_ROWS", 2)
    batch = rows((1, "A", 0.9), (2, "A", 0.8), (3, "B", 0.7), (4, "C", 0.6))
    batch[2].update(mentions("Sounds great.", ("quality", 1)))  # review 3 says something about a topic
    base = publish_batches(own_lake, "20260601T000000Z-base03", [batch]).version
    base_rows = curated(own_lake, base)
    assert np.array_equal(known.read(own_lake, base.version), np.sort(known.keys(own_lake.get_table(base.key))))
    # when a run reads review 3 again with new votes, left unclassified (no outputs), and review 2 edited
    unscored = {c: None for c in publish_module.CARRIED_FIELDS}
    delta = put_scored_batches(
        own_lake,
        "20260602T000000Z-incr03",
        [
            [
                scored_row(3, "B", 0.0, helpful_votes=12, **unscored),
                scored_row(2, "A", 0.1, content_hash="hash-2-edited"),
            ]
        ],
    )
    spec = Base(base.key, "test-classifier", np.array([2, 3]), np.array([1, 2, 3, 4]))
    result = publish(own_lake, "20260602T000000Z-incr03", delta, 5, given_relevance, base=spec)
    # then review 3 has its new votes and the base's outputs; review 2 the ones of its new text
    new = curated(own_lake, result.version)
    assert new[3]["helpful_votes"] == 12
    outputs = publish_module.CARRIED_FIELDS
    assert {c: new[3][c] for c in outputs} == {c: base_rows[3][c] for c in outputs}
    assert {"mentions", "topics"} <= set(outputs) and new[3]["topics"] == ["quality"]  # the sentences' outputs too
    assert new[2]["rel_model"] == pytest.approx(0.1)
    assert result.changes.outputs_reused == 1 and result.changes.replaced == 2


def test_a_review_left_unclassified_without_outputs_in_the_base_is_never_published(own_lake):
    base = publish_batches(own_lake, "20260701T000000Z-base04", [rows((1, "A", 0.9), (2, "A", 0.8))]).version
    unscored = {c: None for c in publish_module.CARRIED_FIELDS}
    for run_id, row in [
        ("20260702T000000Z-incr04", scored_row(2, "A", 0.0, content_hash="hash-2-edited", **unscored)),  # text changed
        ("20260703T000000Z-incr05", scored_row(5, "A", 0.0, **unscored)),  # not in the base
    ]:
        delta = put_scored_batches(own_lake, run_id, [[row]])
        spec = Base(base.key, "test-classifier", np.array([row["review_id"]]), np.array([1, 2, 5]))
        with pytest.raises(OutputsMissing, match="not in the base"):
            publish(own_lake, run_id, delta, 5, given_relevance, base=spec)
    with pytest.raises(OutputsMissing):  # a full run has nothing to carry over from
        publish_batches(own_lake, "20260704T000000Z-full05", [[scored_row(6, "A", 0.0, **unscored)]])
    assert own_lake.latest() == base


def table_of(*specs: tuple[int, str]) -> pa.Table:
    return scored_table([scored_row(review_id, product, 0.5) for review_id, product in specs])


def test_product_ranges_cover_whole_products_in_order():
    base = [table_of((1, "A"), (2, "B")), table_of((3, "B"), (4, "B")), table_of((5, "B"), (6, "D"))]
    delta = table_of((10, "0"), (11, "B"), (12, "C"), (13, "E"))
    ranges = [
        (b.column("review_id").to_pylist(), d.column("review_id").to_pylist())
        for b, d in product_ranges(iter(base), delta)
    ]
    assert ranges == [([1], [10]), ([2, 3, 4, 5], [11, 12]), ([6], [13])]


def test_the_sentence_outputs_keep_their_contract_in_the_curated_zone():
    # what the publisher's summary, the API and the storefront read (shared/schemas.py)
    mention = pa.struct(
        [
            ("start", pa.int32()),
            ("end", pa.int32()),
            ("topic", pa.string()),
            ("sentiment", pa.int8()),
            ("confidence", pa.float32()),
        ]
    )
    for schema in (SCORED, CURATED):
        assert schema.field("mentions").type == pa.list_(mention)
        assert schema.field("topics").type == pa.list_(pa.string())
