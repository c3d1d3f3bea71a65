"""The lake's table contracts: one Arrow schema per zone, shared by producer and consumer.

raw      what the extractor read from the source (buyer id still present)
cleaned  validated, enriched, with features; the buyer id replaced by a keyed pseudonym
scored   cleaned + the classifier's output and the relevance score with its components
curated  what the API serves: scored, minus the columns a storefront has no use for
"""

from __future__ import annotations

import pyarrow as pa

TS = pa.timestamp("ms", tz="UTC")

RAW = pa.schema([
    ("review_id", pa.int64()),
    ("product_id", pa.string()),
    ("buyer_id", pa.string()),
    ("rating", pa.int16()),
    ("title", pa.string()),
    ("text", pa.string()),
    ("helpful_votes", pa.int32()),
    ("total_votes", pa.int32()),  # null where the source format does not publish it
    ("verified_purchase", pa.bool_()),  # null where the source format does not publish it
    ("reviewed_at", TS),
    ("product_title", pa.string()),
    ("product_brand", pa.string()),
    ("product_category", pa.string()),
    ("product_known", pa.bool_()),  # the product has metadata in the source
])  # fmt: skip

CLEANED = pa.schema([
    ("review_id", pa.int64()),
    ("product_id", pa.string()),
    ("buyer_pseudonym", pa.string()),
    ("rating", pa.int16()),
    ("title", pa.string()),
    ("text", pa.string()),
    ("helpful_votes", pa.int32()),
    ("total_votes", pa.int32()),
    ("verified_purchase", pa.bool_()),
    ("reviewed_at", TS),
    ("product_title", pa.string()),
    ("product_brand", pa.string()),
    ("product_category", pa.string()),
    ("text_length", pa.int32()),
    ("word_count", pa.int32()),
    ("age_days", pa.float32()),
])  # fmt: skip

# What the classify stage adds to a cleaned batch.
SCORE_FIELDS = [
    ("category", pa.string()),
    ("category_confidence", pa.float32()),
    ("label_scores", pa.string()),  # JSON object label -> probability; labels are configuration
    ("rel_model", pa.float32()),  # the relevance components, each normalised to [0, 1]
    ("rel_substance", pa.float32()),
    ("rel_votes", pa.float32()),
    ("rel_verified", pa.float32()),
    ("rel_recency", pa.float32()),
    ("relevance_text_only", pa.float32()),  # the cold-start score: no votes needed
    ("relevance_score", pa.float32()),
]
SCORED = pa.schema(list(CLEANED) + [pa.field(n, t) for n, t in SCORE_FIELDS])

CURATED = pa.schema([
    SCORED.field(name)
    for name in (
        "review_id", "product_id", "product_title", "product_category", "rating", "title", "text",
        "reviewed_at", "helpful_votes", "verified_purchase", "category", "category_confidence",
        "label_scores", "relevance_score", "relevance_text_only", "buyer_pseudonym",
    )
])  # fmt: skip
