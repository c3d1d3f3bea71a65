"""Builders of lake tables for tests: plausible values everywhere, the test's own where it says."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa

from ops.source.formats import detect, parse_line, to_product, to_review
from ops.source.loader import read_lines
from services.api.serving.index import ServingIndex
from services.classifier.sentences import split
from services.publisher.publish import Published, publish
from services.transformer.transform import clean_text
from shared.lake import CuratedVersion, Lake, scored_key
from shared.schemas import RELEVANCE_FIELDS, SCORED
from shared.serving_format import NAMES, serving_key


def scored_row(review_id: int, product_id: str, relevance: float, **overrides) -> dict:
    """A scored row. ``relevance`` is stored as its model signal, which ``given_relevance`` serves as
    the review's relevance: tests of what is served fix the order they test."""
    row = {f.name: None for f in SCORED}
    row.update(
        review_id=review_id,
        product_id=product_id,
        product_title=f"Product {product_id}",
        rating=4,
        title="t",
        text="x",
        helpful_votes=0,
        reviewed_at=datetime(2015, 1, 1, tzinfo=UTC),
        buyer_pseudonym="p",
        word_count=1,
        category="quality",
        category_confidence=0.5,
        label_scores=json.dumps({"quality": 0.5}),
        rel_model=relevance,
        mentions=[],  # no sentence on a topic: ``mentions(...)`` gives a review some
        topics=[],
        content_hash=f"hash-{review_id}",
        model_fingerprint="test-classifier",
    )
    row.update(overrides)
    return row


def mentions(text: str, *said: tuple[str | None, int], confidence: float = 0.8) -> dict:
    """The sentence fields of a review of ``text``, as the classifier gives them: its sentences (as
    services/classifier/sentences.py splits it) in order, the i-th on ``said[i]`` (topic or None, sentiment);
    ``topics`` by sentences, then first seen. Pass it into ``scored_row``."""
    spans = split(text)
    assert len(spans) == len(said), f"{len(spans)} sentences in {text!r}, {len(said)} said"
    found = [
        {"start": a, "end": b, "topic": topic, "sentiment": sentiment, "confidence": confidence}
        for (a, b), (topic, sentiment) in zip(spans, said, strict=True)
    ]
    named = [m["topic"] for m in found if m["topic"]]
    topics = sorted(dict.fromkeys(named), key=lambda t: (-named.count(t), named.index(t)))
    return {"text": text, "mentions": found, "topics": topics}


def scored_table(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=SCORED)


def given_relevance(table: pa.Table) -> pa.Table:
    """A publish scorer: each review's relevance is its ``rel_model``, every other component 0."""
    for name, _ in RELEVANCE_FIELDS:
        column = (
            table.column("rel_model")
            if name.startswith("relevance")
            else pa.array(np.zeros(table.num_rows, dtype=np.float32))
        )
        table = table.append_column(name, column)
    return table


def put_scored_batches(lake: Lake, run_id: str, batches: list[list[dict]]) -> list[str]:
    """Store each batch where the classify stage would; returns their keys."""
    keys = []
    for n, rows in enumerate(batches, start=1):
        keys.append(scored_key(run_id, n))
        lake.put_table(keys[-1], scored_table(rows))
    return keys


def publish_batches(lake: Lake, run_id: str, batches: list[list[dict]], keep: int = 5, **kwargs) -> Published:
    """Publish these scored batches as a full run would, with the relevance the rows give."""
    return publish(lake, run_id, put_scored_batches(lake, run_id, batches), keep, given_relevance, **kwargs)


def open_serving(lake: Lake, version: CuratedVersion, folder: Path) -> ServingIndex:
    """A published version's serving files, fetched into ``folder`` and mapped, as the API does."""
    for name in NAMES:
        lake.get_file(serving_key(version.version, name), folder / f"{name}.arrow")
    return ServingIndex(version, folder)


LABELS = ("product quality", "value for money", "durability", "ease of use", "content and artistry", None)


def _records(path: Path):
    for _, line in read_lines(path, progress=False):
        record = parse_line(line)
        yield record, detect(record, path.name)[1]


def real_product_titles(data_dir: Path) -> dict[str, str]:
    """Every product title of the shared metadata files (Digital Music, Magazines, Gift Cards), cleaned."""
    titles = {}
    for path in sorted(data_dir.rglob("meta_*.json.gz")):
        for record, generation in _records(path):
            product = to_product(record, generation)
            if product.title:
                titles[product.product_id] = clean_text(product.title)
    return titles


DIGITAL_MUSIC = "amazon-2014/digital_music/reviews_Digital_Music_5.json.gz"


def real_scored_rows(data_dir: Path, file: str = DIGITAL_MUSIC) -> list[dict]:
    """Scored rows of one shared review file, as transform cleans them: real texts, titles, ratings, votes,
    dates and product titles. A classifier's outputs are stand-ins spread by the review's number: a topic
    (or none), a confidence and a usefulness that ``given_relevance`` serves as the relevance."""
    titles = real_product_titles(data_dir)
    rows = []
    for n, (record, generation) in enumerate(_records(data_dir / file), start=1):
        review = to_review(record, generation)
        spread = (n * 0.6180339887) % 1
        rows.append(
            scored_row(
                n,
                review.product_id,
                round(spread, 6),
                rating=review.rating,
                title=clean_text(review.title) or None,
                text=clean_text(review.text),
                helpful_votes=review.helpful_votes,
                verified_purchase=review.verified_purchase,
                reviewed_at=review.reviewed_at,
                product_title=titles.get(review.product_id),
                category=LABELS[n % len(LABELS)],
                category_confidence=0.125 + spread * 0.8,
                buyer_pseudonym=f"pseudonym-of-{review.buyer_id}",
            )
        )
    return rows
