"""Builders of lake tables for tests: plausible values everywhere, the test's own where it says."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa

from services.publisher.publish import Published, publish
from shared.lake import Lake, scored_key
from shared.schemas import RELEVANCE_FIELDS, SCORED


def scored_row(review_id: int, product_id: str, relevance: float, **overrides) -> dict:
    """A scored row. ``relevance`` is stored as its model signal, which ``given_relevance`` serves as
    the review's relevance: tests of what is served fix the order they test."""
    row = {f.name: None for f in SCORED}
    row.update(
        review_id=review_id, product_id=product_id, product_title=f"Product {product_id}", rating=4, title="t",
        text="x", helpful_votes=0, reviewed_at=datetime(2015, 1, 1, tzinfo=UTC), buyer_pseudonym="p",
        word_count=1, category="quality", category_confidence=0.5, label_scores=json.dumps({"quality": 0.5}),
        rel_model=relevance, content_hash=f"hash-{review_id}", model_fingerprint="test-classifier",
    )  # fmt: skip
    row.update(overrides)
    return row


def scored_table(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=SCORED)


def given_relevance(table: pa.Table) -> pa.Table:
    """A publish scorer: each review's relevance is its ``rel_model``, every other component 0."""
    for name, _ in RELEVANCE_FIELDS:
        column = table.column("rel_model") if name.startswith("relevance") else pa.array(
            np.zeros(table.num_rows, dtype=np.float32))
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
