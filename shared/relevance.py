"""The relevance score of a review (docs/relevance.md): from the classifier's usefulness signal (classify's
rel_model) and the review's other stored columns.

It depends on the day (ages) and on settings (weights), so publish recomputes it for every review of the
catalogue, every run, from stored columns; that needs no model and costs microseconds per review.

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

from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shared.schemas import RELEVANCE_FIELDS
from shared.settings import Settings

COMPONENTS = ("rel_model", "rel_substance", "rel_votes", "rel_verified", "rel_recency")
_DAY_MS = 86_400_000


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
