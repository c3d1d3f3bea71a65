"""The relevance score's components, weights and cache (plain functions)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from services.classifier.evaluate import ndcg_at_k
from services.classifier.scoring import components, content_hash, infer_cached, score_batch, weights
from shared.schemas import SCORE_FIELDS
from shared.settings import Settings

SETTINGS = Settings()


def frame(**columns) -> pd.DataFrame:
    base = {"title": ["t"], "text": ["x"], "word_count": [0], "helpful_votes": [0], "age_days": [0.0],
            "verified_purchase": [None]}  # fmt: skip
    base.update({k: [v] for k, v in columns.items()})
    return pd.DataFrame(base)


def test_components_by_hand():
    row = components(frame(word_count=150, helpful_votes=3, age_days=180.0, verified_purchase=True),
                     np.array([0.4]), SETTINGS).iloc[0]  # fmt: skip
    exposure = 1 - math.exp(-1)
    assert row["rel_model"] == pytest.approx(0.4)
    assert row["rel_substance"] == pytest.approx(1 - math.exp(-1))
    assert row["rel_votes"] == pytest.approx(math.log1p(3) / (math.log1p(3) + math.log1p(1 + 5 * exposure)))
    assert row["rel_verified"] == 1.0
    assert row["rel_recency"] == pytest.approx(0.5 ** (180 / 730))


def test_votes_count_more_on_a_new_review_and_verified_unknown_is_neutral():
    new, old = (components(frame(helpful_votes=3, age_days=d), np.array([0.0]), SETTINGS).iloc[0] for d in (10, 2000))
    assert new["rel_votes"] > old["rel_votes"]
    assert components(frame(), np.array([0.0]), SETTINGS).iloc[0]["rel_verified"] == 0.5


def test_weights_are_normalised_and_text_only_keeps_only_the_text_components():
    assert weights(SETTINGS).sum() == pytest.approx(1)
    text_only = weights(SETTINGS, text_only=True)
    assert list(text_only[2:]) == [0, 0, 0] and text_only.sum() == pytest.approx(1)  # votes, verified, recency
    with pytest.raises(ValueError):
        weights(Settings(weight_model=0, weight_substance=0, weight_votes=0, weight_verified=0, weight_recency=0))


class FakeClassifier:
    labels = ["a", "b"]
    fingerprint = "fake-v1"

    def __init__(self):
        self.seen: list[str] = []

    def infer(self, texts):
        self.seen.extend(texts)
        return np.array([[0.25, 0.75, 0.5]] * len(texts), dtype=np.float32)


class DictCache:
    def __init__(self):
        self.store = {}

    def get_many(self, keys):
        return {k: self.store[k] for k in keys if k in self.store}

    def put_many(self, entries):
        self.store.update(entries)


def test_the_cache_sends_only_new_texts_to_the_model():
    model, cache = FakeClassifier(), DictCache()
    infer_cached(model, ["one", "two", "two"], cache)
    assert sorted(model.seen) == ["one", "two"]  # a duplicate text is inferred once
    out = infer_cached(model, ["one", "three"], cache)
    assert sorted(model.seen) == ["one", "three", "two"] and out.shape == (2, 3)
    assert content_hash("x", "m1") != content_hash("x", "m2")


def test_score_batch_adds_every_scored_column():
    cleaned = pd.concat([frame(word_count=100, helpful_votes=5), frame()], ignore_index=True)
    scored = score_batch(cleaned, FakeClassifier(), SETTINGS)
    assert {name for name, _ in SCORE_FIELDS} <= set(scored.columns)
    assert list(scored["category"]) == ["b", "b"] and scored["category_confidence"].iloc[0] == pytest.approx(0.75)
    assert json.loads(scored["label_scores"].iloc[0]) == {"a": 0.25, "b": 0.75}
    assert scored["relevance_score"].iloc[0] > scored["relevance_score"].iloc[1]


def test_ndcg_by_hand():
    gains = np.array([0.0, 1.0, 3.0])
    assert ndcg_at_k(np.array([0.1, 0.2, 0.3]), gains) == pytest.approx(1.0)
    worst = (0 + 1 / math.log2(3) + 3 / math.log2(4)) / (3 + 1 / math.log2(3))
    assert ndcg_at_k(np.array([0.3, 0.2, 0.1]), gains) == pytest.approx(worst)
    assert math.isnan(ndcg_at_k(np.array([1.0, 2.0]), np.zeros(2)))
