"""The lake's table contracts: one Arrow schema per zone, shared by producer and consumer.

raw      what the extractor read from the source (buyer id still present)
cleaned  validated, enriched, with features; the buyer id replaced by a keyed pseudonym
scored   cleaned + the classifier's outputs (one run's delta)
curated  scored + the relevance score and its components, for the whole catalogue: what the API
         serves, and the state the next incremental run starts from
"""

from __future__ import annotations

import pyarrow as pa

TS = pa.timestamp("ms", tz="UTC")

RAW = pa.schema(
    [
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
        # The source row's last change, the extraction's watermark: to the microsecond, as PostgreSQL keeps
        # it, or a cursor would sort before the row it was taken from and read it again.
        ("updated_at", pa.timestamp("us", tz="UTC")),
    ]
)

CLEANED = pa.schema(
    [
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
    ]
)

# A sentence of a review and what it is about: ``start``/``end`` are character offsets (code points) in the
# review's text; ``topic`` is null where the classifier abstained; ``sentiment`` -1 negative, 0 neutral, 1 positive.
MENTION = pa.struct(
    [
        ("start", pa.int32()),
        ("end", pa.int32()),
        ("topic", pa.string()),
        ("sentiment", pa.int8()),
        ("confidence", pa.float32()),
    ]
)

# What the classify stage adds to a cleaned batch: the model's outputs, nothing that depends on
# the day or on the other reviews of the product, so a later run can carry them forward as they are.
MODEL_FIELDS = [
    ("category", pa.string()),
    ("category_confidence", pa.float32()),
    ("label_scores", pa.string()),  # JSON object label -> probability; labels are configuration
    ("rel_model", pa.float32()),  # the model's usefulness signal, in [0, 1]
    ("content_hash", pa.string()),  # of the text the model read and the classifier's fingerprint
    ("model_fingerprint", pa.string()),  # the classifier that produced these outputs
    ("mentions", pa.list_(MENTION)),  # one per sentence, in text order; empty in versions before them
    ("topics", pa.list_(pa.string())),  # the review's distinct topics, most discussed first
]
SCORED = pa.schema(list(CLEANED) + [pa.field(n, t) for n, t in MODEL_FIELDS])

# What publish computes over the whole catalogue, every run: ages move with the day, weights are settings.
RELEVANCE_FIELDS = [
    ("rel_substance", pa.float32()),  # the relevance components, each normalised to [0, 1]
    ("rel_votes", pa.float32()),
    ("rel_verified", pa.float32()),
    ("rel_recency", pa.float32()),
    ("relevance_text_only", pa.float32()),  # the cold-start score: no votes needed
    ("relevance_score", pa.float32()),
]
# The curated file is also the next run's starting point: it keeps every scored column.
CURATED = pa.schema(list(SCORED) + [pa.field(n, t) for n, t in RELEVANCE_FIELDS])
