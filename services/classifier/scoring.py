"""The relevance score: a documented weighted mean of normalised components (docs/relevance.md).

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
from typing import Protocol

import numpy as np
import pandas as pd

from services.classifier.model import Classifier
from shared.settings import Settings

COMPONENTS = ("rel_model", "rel_substance", "rel_votes", "rel_verified", "rel_recency")


class ScoreCache(Protocol):
    def get_many(self, keys: list[str]) -> dict[str, np.ndarray]: ...
    def put_many(self, entries: dict[str, np.ndarray]) -> None: ...


def review_text(title: str | None, text: str | None) -> str:
    """What the model reads: the title carries the reviewer's own summary."""
    return f"{title}. {text}" if title else (text or "")


def content_hash(text: str, fingerprint: str) -> str:
    return hashlib.sha1(f"{fingerprint}\x1f{text}".encode()).hexdigest()


def infer_cached(classifier: Classifier, texts: list[str], cache: ScoreCache | None) -> np.ndarray:
    """The classifier's outputs for ``texts``; only texts the cache does not hold reach the model."""
    if cache is None:
        return classifier.infer(texts)
    keys = [content_hash(t, classifier.fingerprint) for t in texts]
    found = cache.get_many(sorted(set(keys)))
    missing = sorted({k: t for k, t in zip(keys, texts, strict=True) if k not in found}.items())
    if missing:
        fresh = classifier.infer([t for _, t in missing])
        new = {k: row for (k, _), row in zip(missing, fresh, strict=True)}
        cache.put_many(new)
        found.update(new)
    return np.stack([found[k] for k in keys]) if keys else classifier.infer([])


def weights(settings: Settings, text_only: bool = False) -> np.ndarray:
    """In the order of COMPONENTS, summing to 1."""
    w = np.array([settings.weight_model, settings.weight_substance, settings.weight_votes,
                  settings.weight_verified, settings.weight_recency], dtype=np.float64)  # fmt: skip
    if text_only:
        w[2:] = 0.0
    if w.sum() <= 0:
        raise ValueError("the relevance weights sum to zero")
    return w / w.sum()


def components(df: pd.DataFrame, usefulness: np.ndarray, settings: Settings) -> pd.DataFrame:
    words = df["word_count"].to_numpy(dtype=np.float64)
    votes = df["helpful_votes"].fillna(0).to_numpy(dtype=np.float64).clip(min=0)
    age = df["age_days"].to_numpy(dtype=np.float64).clip(min=0)
    exposure = 1 - np.exp(-age / settings.exposure_days)
    verified = df["verified_purchase"].map({True: 1.0, False: 0.0}).fillna(0.5).to_numpy(dtype=np.float64)
    vote_scale = np.log1p(votes)
    return pd.DataFrame({
        "rel_model": usefulness.astype(np.float64),
        "rel_substance": 1 - np.exp(-words / settings.substance_words),
        "rel_votes": vote_scale / (vote_scale + np.log1p(1 + settings.votes_prior * exposure)),
        "rel_verified": verified,
        "rel_recency": 0.5 ** (age / settings.recency_half_life_days),
    }, index=df.index)  # fmt: skip


def score_batch(
    cleaned: pd.DataFrame, classifier: Classifier, settings: Settings, now: datetime | None = None,
    cache: ScoreCache | None = None,
) -> pd.DataFrame:  # fmt: skip
    """A cleaned batch with the classifier's output and the relevance score added (the SCORED columns).

    ``now`` is unused by the score itself: ages come from the transform's ``age_days``.
    """
    texts = [review_text(t, x) for t, x in zip(cleaned["title"], cleaned["text"], strict=True)]
    outputs = infer_cached(classifier, texts, cache)
    n_labels = len(classifier.labels)
    probs, usefulness = outputs[:, :n_labels], outputs[:, n_labels]
    scored = cleaned.copy()
    top = probs.argmax(axis=1) if len(probs) else np.array([], dtype=int)
    scored["category"] = [classifier.labels[i] for i in top]
    scored["category_confidence"] = probs.max(axis=1).astype(np.float32) if len(probs) else np.float32(0)
    scored["label_scores"] = [json.dumps(dict(zip(classifier.labels, np.round(row, 4).tolist(), strict=True)))
                              for row in probs]  # fmt: skip
    parts = components(cleaned, usefulness, settings)
    for name in COMPONENTS:
        scored[name] = parts[name].astype(np.float32)
    matrix = parts[list(COMPONENTS)].to_numpy()
    scored["relevance_score"] = (matrix @ weights(settings)).astype(np.float32)
    scored["relevance_text_only"] = (matrix @ weights(settings, text_only=True)).astype(np.float32)
    return scored
