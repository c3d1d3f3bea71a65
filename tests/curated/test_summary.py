"""What customers say, topic by topic: the summary publish computes into the serving files, and the
reviews that discuss a topic in any sentence, read as the API reads them, from versions published to the
real S3 server by the real publish code."""

from __future__ import annotations

import json

import pyarrow.parquet as pq

from services.api.serving.index import ServingIndex
from services.publisher.publish import curated_range
from shared.curated import serving
from shared.curated.summary import QUOTE_CHARS, trim
from shared.lake import CuratedVersion
from tests.factories import given_relevance, mentions, open_serving, publish_batches, scored_row, scored_table

# Product A, most relevant first. Review 4 was analysed before sentence topics: no mentions, one topic.
A = [
    scored_row(
        1,
        "A",
        0.9,
        **mentions("The sound is superb. The hinge cracked after a month.", ("quality", 1), ("durability", -1)),
    ),
    scored_row(2, "A", 0.7, **mentions("Sturdy as a rock. Solid hinges too.", ("durability", 1), ("durability", 1))),
    scored_row(
        3, "A", 0.5, **mentions("Arrived late. Sound is fine. Hm.", ("delivery", -1), ("quality", 0), (None, 0))
    ),
    scored_row(4, "A", 0.3, text="Broke at once.", category="durability", mentions=[], topics=[]),
    scored_row(5, "A", 0.2, **mentions("The hinge snapped in a week.", ("durability", -1))),
]
# Review 2's second sentence is the more confident of its two positive ones: the quote.
A[1]["mentions"][1]["confidence"] = 0.95


def open_serving_folder(folder, version: str, rows: int) -> ServingIndex:
    """Serving files built in ``folder``, mapped as the API maps them."""
    return ServingIndex(CuratedVersion(version, "k", rows, 1, "2026-06-01T00:00:00+00:00"), folder)


def served(own_lake, tmp_path, run_id: str, batches: list[list[dict]], **kwargs):
    version = publish_batches(own_lake, run_id, batches, **kwargs).version
    return open_serving(own_lake, version, tmp_path)


def test_each_topic_counts_reviews_and_sentences_with_shares_and_quotes_from_the_most_relevant(own_lake, tmp_path):
    # given product A (two reviews kept a product: the summary still reads every review) and product B
    index = served(
        own_lake,
        tmp_path,
        "20260601T000000Z-sum001",
        [A[:3], A[3:] + [scored_row(6, "B", 0.5, mentions=[], topics=[])]],
        reviews_kept=2,
    )
    # when its summary is read as the API answers it
    said = json.loads(index.summary("A"))
    # then every topic of its sentences, most discussed first, with its reviews, sentences and shares
    assert (said["product_id"], said["product_title"], said["version"]) == ("A", "Product A", "20260601T000000Z-sum001")
    assert (said["review_count"], said["reviews_analysed"]) == (5, 4)
    assert [(t["topic"], t["reviews"], t["mentions"], t["positive"], t["negative"]) for t in said["topics"]] == [
        ("durability", 3, 4, 0.5, 0.5),
        ("quality", 2, 2, 0.5, 0.0),
        ("delivery", 1, 1, 0.0, 1.0),
    ]
    durability, quality, delivery = said["topics"]
    # and each side's quote is from the most relevant review with one, its most confident sentence
    assert durability["positive_quote"] == {"review_id": 2, "text": "Solid hinges too."}
    assert durability["negative_quote"] == {"review_id": 1, "text": "The hinge cracked after a month."}
    assert quality["positive_quote"] == {"review_id": 1, "text": "The sound is superb."}
    assert quality["negative_quote"] is None and delivery["positive_quote"] is None
    # and a product without sentence mentions has a summary with no topic
    assert json.loads(index.summary("B"))["topics"] == []


def test_a_topic_finds_the_reviews_discussing_it_in_any_sentence_with_the_sentences(own_lake, tmp_path):
    index = served(own_lake, tmp_path, "20260602T000000Z-sum002", [A])
    # when the reviews of A on durability are asked for
    found = json.loads(index.top("A", 50, topic="durability"))["reviews"]
    # then each review that discusses it, in relevance order, whatever its single topic (review 1's is quality),
    # and review 4 by its single topic, without sentences to show
    assert [r["review_id"] for r in found] == [1, 2, 4, 5]
    assert found[0]["category"] == "quality" and found[0]["topics"] == ["quality", "durability"]
    assert found[0]["matches"] == [{"start": 21, "end": 53, "sentiment": -1}]
    assert found[0]["text"][21:53] == "The hinge cracked after a month."
    assert [len(r["matches"]) for r in found] == [1, 2, 0, 1]
    # and the single-topic filter keeps its meaning, other filters combine, a topic nobody names finds nothing
    assert [r["review_id"] for r in json.loads(index.top("A", 50, category="durability"))["reviews"]] == [4]
    assert [r["review_id"] for r in json.loads(index.top("A", 50, topic="durability", min_rating=5))["reviews"]] == []
    assert json.loads(index.top("A", 50, topic="price"))["reviews"] == []
    # and an unfiltered page carries no matches
    assert all("matches" not in r for r in json.loads(index.top("A", 50))["reviews"])


def test_summaries_of_many_ranges_each_find_their_product(tmp_path, monkeypatch):
    # given a curated file read back two reviews at a time: products in several ranges, one cut across two
    monkeypatch.setattr("shared.curated.RANGE_ROWS", 2)
    rows = [
        scored_row(i, product, 0.9 - i / 100, **mentions(f"About {product}.", (f"topic-{product}", 1)))
        for i, product in enumerate(["A", "B", "B", "B", "C", "D", "E"], start=1)
    ]
    pq.write_table(curated_range(scored_table(rows), given_relevance), tmp_path / "curated.parquet", row_group_size=2)
    serving.build(tmp_path / "curated.parquet", tmp_path, "v", reviews_kept=3)
    index = open_serving_folder(tmp_path, "v", len(rows))
    # then each product's summary is its own
    for product, reviews in (("A", 1), ("B", 3), ("C", 1), ("D", 1), ("E", 1)):
        [topic] = json.loads(index.summary(product))["topics"]
        assert (topic["topic"], topic["reviews"]) == (f"topic-{product}", reviews)


def test_a_version_published_before_sentence_topics_serves_empty_summaries_and_topics_by_category(tmp_path):
    # given a curated file of the format before mentions: no mentions or topics columns at all
    table = curated_range(
        scored_table([scored_row(1, "A", 0.9, category="durability"), scored_row(2, "A", 0.5)]), given_relevance
    )
    pq.write_table(table.drop_columns(["mentions", "topics"]), tmp_path / "curated.parquet")
    # when its serving files are built (a rollback to it builds them)
    serving.build(tmp_path / "curated.parquet", tmp_path, "old", reviews_kept=5)
    index = open_serving_folder(tmp_path, "old", 2)
    # then its summary says nothing of topics, and a topic finds the reviews whose single topic it is
    assert json.loads(index.summary("A")) | {"version": "old"} == {
        "product_id": "A",
        "product_title": "Product A",
        "version": "old",
        "review_count": 2,
        "reviews_analysed": 0,
        "topics": [],
    }
    found = json.loads(index.top("A", 5, topic="durability"))["reviews"]
    assert [(r["review_id"], r["topics"], r["matches"]) for r in found] == [(1, [], [])]


def test_a_long_quote_is_cut_at_a_word_boundary():
    sentence = "The noise cancelling is outstanding on long flights, " * 5
    quote = trim(sentence)
    assert len(quote) <= QUOTE_CHARS and quote.endswith("…")
    assert sentence.startswith(quote[:-1]) and sentence[len(quote) - 1] in " ,"  # whole words only
    assert trim("  Short\n and   plain. ") == "Short and plain."
    assert trim("x" * 400).startswith("x" * (QUOTE_CHARS - 1))  # one endless word: cut inside it
