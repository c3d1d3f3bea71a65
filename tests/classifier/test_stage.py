"""The classify stage on one stored batch (real S3 server): what the model reads, and what it need not."""

from __future__ import annotations

import pyarrow as pa

from services.classifier import stage
from services.classifier.scoring import content_hash, review_text
from shared import known
from shared.lake import cleaned_key, known_key
from shared.schemas import CLEANED, SCORED
from tests.classifier.fakes import FakeClassifier
from tests.factories import scored_row


def cleaned(*specs: tuple[int, str, str]) -> pa.Table:
    rows = [
        {**scored_row(review_id, product, 0.5, title=None, text=text), "helpful_votes": 3}
        for review_id, product, text in specs
    ]
    return pa.Table.from_pylist(rows, schema=SCORED).select(CLEANED.names)


def base_keys(*specs: tuple[int, str, str]) -> pa.Table:
    """What a base version holds of these reviews: their product and the hash of their text."""
    return pa.table(
        {
            "review_id": [s[0] for s in specs],
            "product_id": [s[1] for s in specs],
            "content_hash": [content_hash(review_text(None, s[2]), FakeClassifier.fingerprint) for s in specs],
        }
    )


def test_reviews_whose_product_and_text_the_base_holds_are_not_read_again(own_lake):
    # given a base version holding reviews 1, 2 and 3, and a batch that reads them again with 4, a new one
    own_lake.put_bytes(
        known_key("base-version"),
        known.keys(base_keys((1, "A", "it broke"), (2, "A", "great sound"), (3, "B", "arrived late"))).tobytes(),
    )
    batch = cleaned((1, "A", "it broke"), (2, "A", "great sound, edited"), (3, "C", "arrived late"), (4, "A", "new"))
    own_lake.put_table(cleaned_key("run-1", 1), batch)
    keys = stage.BaseKeys().of(own_lake, "base-version")
    model = FakeClassifier()

    key, rows, carried = stage.run(own_lake, model, "run-1", 1, cleaned_key("run-1", 1), keys)

    # then only review 1 (votes changed, same product and text) is left for publish to fill
    assert sorted(model.seen) == ["arrived late", "great sound, edited", "new"]  # edited, moved, new
    assert (rows, carried) == (4, 1)
    scored = {r["review_id"]: r for r in own_lake.get_table(key, SCORED).to_pylist()}
    outputs = ("category", "category_confidence", "label_scores", "rel_model", "mentions", "topics")
    assert [scored[1][f] for f in outputs] == [None] * 6  # the sentences' outputs too: publish carries them
    assert scored[1]["content_hash"] == content_hash("it broke", "fake-v1") and scored[1]["helpful_votes"] == 3
    assert all(scored[i]["rel_model"] is not None and scored[i]["category"] == "b" for i in (2, 3, 4))
    assert scored[2]["topics"] == ["b"] and [(m["start"], m["end"]) for m in scored[2]["mentions"]] == [(0, 19)]


def test_a_full_run_or_a_base_without_keys_classifies_everything(own_lake):
    batch = cleaned((1, "A", "it broke"))
    own_lake.put_table(cleaned_key("run-2", 1), batch)
    base_keys_of = stage.BaseKeys()
    for base_version in (None, "a-version-published-before-keys-existed"):
        model = FakeClassifier()
        _, _, carried = stage.run(
            own_lake, model, "run-2", 1, cleaned_key("run-2", 1), base_keys_of.of(own_lake, base_version)
        )
        assert model.seen == ["it broke"] and carried == 0
