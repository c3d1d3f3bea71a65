"""Builders of lake tables for tests: plausible values everywhere, the test's own where it says."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pyarrow as pa

from shared.lake import Lake, scored_key
from shared.schemas import SCORED


def scored_row(review_id: int, product_id: str, relevance: float, **overrides) -> dict:
    row = {f.name: None for f in SCORED}
    row.update(
        review_id=review_id, product_id=product_id, product_title=f"Product {product_id}", rating=4, title="t",
        text="x", helpful_votes=0, reviewed_at=datetime(2015, 1, 1, tzinfo=UTC), buyer_pseudonym="p",
        category="quality", category_confidence=0.5, label_scores=json.dumps({"quality": 0.5}),
        relevance_score=relevance, relevance_text_only=relevance,
    )  # fmt: skip
    row.update(overrides)
    return row


def scored_table(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=SCORED)


def put_scored_batches(lake: Lake, run_id: str, batches: list[list[dict]]) -> list[str]:
    """Store each batch where the classify stage would; returns their keys."""
    keys = []
    for n, rows in enumerate(batches, start=1):
        keys.append(scored_key(run_id, n))
        lake.put_table(keys[-1], scored_table(rows))
    return keys
