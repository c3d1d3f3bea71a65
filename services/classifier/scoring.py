"""How a review is scored: the model's outputs (classify, once per text) and the relevance score
(publish, every run, over the whole catalogue: docs/relevance.md).

Model outputs depend only on the text and the classifier, so a later run carries them forward.
The relevance score depends on the day (ages) and on settings (weights), so publish recomputes it
for every review from stored columns; that needs no model and costs microseconds per review.

rel_model      the classifier's usefulness signal: specific and informative vs vague
rel_substance  1 - exp(-words / SUBSTANCE_WORDS): saturating in length, so an essay is not 10x a paragraph
rel_votes      log1p(votes) / (log1p(votes) + log1p(1 + VOTES_PRIOR * exposure)): helpful votes on a log
               scale against what a review of that age could have gathered (exposure = 1 - exp(-age /
               EXPOSURE_DAYS)), so a new review with 3 votes outranks an old one with 3; no Wilson bound,
               since the 2023 data publishes up-votes only
rel_verified   1 verified purchase, 0 not, 0.5 unknown (the 2014 data has no flag)
rel_recency    0.5 ** (age / RECENCY_HALF_LIFE_DAYS)

relevance_score     all five, weighted by the WEIGHT_* settings
relevance_text_only what the text alone says, rel_model and rel_substance (weights re-normalised): the
                    cold-start score of a new review, which has no votes, and whose recency and purchase
                    flag say nothing about what it is worth reading
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from services.classifier.model import Classifier
from shared import known as known_reviews
from shared.schemas import RELEVANCE_FIELDS
from shared.settings import Settings

COMPONENTS = ("rel_model", "rel_substance", "rel_votes", "rel_verified", "rel_recency")
_DAY_MS = 86_400_000


def review_text(title: str | None, text: str | None) -> str:
    """What the model reads: the title carries the reviewer's own summary (missing: None or NaN)."""
    text = text if isinstance(text, str) else ""
    return f"{title}. {text}" if isinstance(title, str) and title else text


def review_texts(reviews: pd.DataFrame) -> list[str]:
    """What the model reads of each review of a frame with title and text columns."""
    return [review_text(t, x) for t, x in zip(reviews["title"], reviews["text"], strict=True)]


def content_hash(text: str, fingerprint: str) -> str:
    return hashlib.sha1(f"{fingerprint}\x1f{text}".encode()).hexdigest()


def model_outputs(
    cleaned: pd.DataFrame, classifier: Classifier, known: np.ndarray = known_reviews.NONE
) -> pd.DataFrame:
    """The classifier's outputs for a cleaned batch (the MODEL_FIELDS). A text repeated in the batch
    reaches the model once; a review whose product and text the run's base version holds (``known``,
    sorted keys: shared/known.py) not at all: its outputs stay null, and publish carries them over."""
    texts = review_texts(cleaned)
    hashes = [content_hash(t, classifier.fingerprint) for t in texts]
    carried = np.zeros(len(texts), dtype=bool)
    if len(known) and texts:
        rows = pa.table(
            {
                "review_id": cleaned["review_id"].to_numpy(np.int64),
                "product_id": cleaned["product_id"],
                "content_hash": hashes,
            }
        )
        carried = known_reviews.member(known_reviews.keys(rows), known)
    to_read = [t for t, c in zip(texts, carried, strict=True) if not c]
    unique = list(dict.fromkeys(to_read))
    inferred = classifier.infer(unique)
    position = {text: i for i, text in enumerate(unique)}
    n_labels = len(classifier.labels)
    outputs = np.full((len(texts), n_labels + 1), np.nan, dtype=np.float32)
    if to_read:
        outputs[~carried] = inferred[[position[t] for t in to_read]]
    probs, usefulness = outputs[:, :n_labels], outputs[:, n_labels]
    top = probs.argmax(axis=1) if len(probs) else np.array([], dtype=int)
    return pd.DataFrame(
        {
            "category": [None if c else classifier.labels[i] for i, c in zip(top, carried, strict=True)],
            "category_confidence": probs.max(axis=1) if len(probs) else np.zeros(0, np.float32),
            "label_scores": [
                None if c else json.dumps(dict(zip(classifier.labels, np.round(row, 4).tolist(), strict=True)))
                for row, c in zip(probs, carried, strict=True)
            ],
            "rel_model": usefulness,
            "content_hash": hashes,
            "model_fingerprint": classifier.fingerprint,
        },
        index=cleaned.index,
    )


def weights(settings: Settings, text_only: bool = False) -> np.ndarray:
    """In the order of COMPONENTS, summing to 1."""
    w = np.array(
        [
            settings.weight_model,
            settings.weight_substance,
            settings.weight_votes,
            settings.weight_verified,
            settings.weight_recency,
        ],
        dtype=np.float64,
    )
    if text_only:
        w[2:] = 0.0
    if w.sum() <= 0:
        raise ValueError("the relevance weights sum to zero")
    return w / w.sum()


def age_days(reviewed_at: pa.ChunkedArray | pa.Array, as_of: datetime) -> np.ndarray:
    """Days from each review to ``as_of`` (the run's day), never negative."""
    ms = reviewed_at.cast(pa.timestamp("ms", tz="UTC")).cast(pa.int64()).to_numpy(zero_copy_only=False)
    return ((int(as_of.timestamp() * 1000) - ms) / _DAY_MS).clip(min=0)


def components(table: pa.Table, as_of: datetime, settings: Settings) -> dict[str, np.ndarray]:
    """Each component of every row, from the stored columns; ages as of ``as_of``."""

    def numbers(name: str) -> np.ndarray:
        return table.column(name).to_numpy(zero_copy_only=False).astype(np.float64)

    words = np.nan_to_num(numbers("word_count"))
    votes = np.nan_to_num(numbers("helpful_votes")).clip(min=0)
    age = age_days(table.column("reviewed_at"), as_of)
    exposure = 1 - np.exp(-age / settings.exposure_days)
    verified = pc.fill_null(pc.if_else(table.column("verified_purchase"), 1.0, 0.0), 0.5)
    vote_scale = np.log1p(votes)
    return {
        "age_days": age,
        "rel_model": np.nan_to_num(numbers("rel_model")),
        "rel_substance": 1 - np.exp(-words / settings.substance_words),
        "rel_votes": vote_scale / (vote_scale + np.log1p(1 + settings.votes_prior * exposure)),
        "rel_verified": verified.to_numpy(),
        "rel_recency": 0.5 ** (age / settings.recency_half_life_days),
    }


def relevance(table: pa.Table, settings: Settings, as_of: datetime) -> pa.Table:
    """``table`` (scored or curated rows) with its age and the RELEVANCE_FIELDS computed as of ``as_of``."""
    parts = components(table, as_of, settings)
    matrix = np.column_stack([parts[name] for name in COMPONENTS]) if table.num_rows else np.zeros((0, 5))
    values = {
        **{name: parts[name] for name, _ in RELEVANCE_FIELDS if name in parts},
        "relevance_text_only": matrix @ weights(settings, text_only=True),
        "relevance_score": matrix @ weights(settings),
        "age_days": parts["age_days"],
    }
    for name, array in values.items():
        column = pa.array(array.astype(np.float32), type=pa.float32())
        if name in table.schema.names:
            table = table.set_column(table.schema.get_field_index(name), name, column)
        else:
            table = table.append_column(name, column)
    return table
