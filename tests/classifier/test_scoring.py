"""Model outputs and the relevance score's components and weights (plain functions)."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from services.classifier.evaluate import ndcg_at_k
from services.classifier.scoring import components, content_hash, model_outputs, relevance, weights
from shared.schemas import MODEL_FIELDS, RELEVANCE_FIELDS
from shared.settings import Settings
from tests.classifier.fakes import FakeClassifier

SETTINGS = Settings()
AS_OF = datetime(2020, 1, 1, tzinfo=UTC)


def table(**columns) -> pa.Table:
    """Scored rows with what the relevance reads; ``age_days`` gives reviewed_at before AS_OF."""
    base = {"word_count": [0], "helpful_votes": [0], "age_days": [0.0], "verified_purchase": [None], "rel_model": [0.0]}
    base.update({k: v if isinstance(v, list) else [v] for k, v in columns.items()})
    ages = base.pop("age_days")
    base["reviewed_at"] = [AS_OF - timedelta(days=a) for a in ages]
    return pa.Table.from_pydict(base)


def test_components_by_hand():
    row = {
        k: v[0]
        for k, v in components(
            table(word_count=150, helpful_votes=3, age_days=180.0, verified_purchase=True, rel_model=0.4),
            AS_OF,
            SETTINGS,
        ).items()
    }
    exposure = 1 - math.exp(-1)
    assert row["age_days"] == pytest.approx(180)
    assert row["rel_model"] == pytest.approx(0.4)
    assert row["rel_substance"] == pytest.approx(1 - math.exp(-1))
    assert row["rel_votes"] == pytest.approx(math.log1p(3) / (math.log1p(3) + math.log1p(1 + 5 * exposure)))
    assert row["rel_verified"] == 1.0
    assert row["rel_recency"] == pytest.approx(0.5 ** (180 / 730))


def test_votes_count_more_on_a_new_review_and_verified_unknown_is_neutral():
    parts = components(
        table(
            helpful_votes=[3, 3],
            age_days=[10.0, 2000.0],
            verified_purchase=[None, None],
            word_count=[0, 0],
            rel_model=[0.0, 0.0],
        ),
        AS_OF,
        SETTINGS,
    )
    assert parts["rel_votes"][0] > parts["rel_votes"][1]
    assert list(parts["rel_verified"]) == [0.5, 0.5]


def test_ages_follow_the_day_scored_as_of_and_a_review_of_that_day_is_not_negative():
    parts = components(
        table(
            age_days=[-0.5, 3.0],
            helpful_votes=[0, 0],
            verified_purchase=[None, None],
            word_count=[0, 0],
            rel_model=[0.0, 0.0],
        ),
        AS_OF,
        SETTINGS,
    )
    assert list(parts["age_days"]) == [0.0, pytest.approx(3.0)]
    later = components(table(age_days=3.0), AS_OF + timedelta(days=10), SETTINGS)
    assert later["age_days"][0] == pytest.approx(13.0) and later["rel_recency"][0] < parts["rel_recency"][1]


def test_weights_are_normalised_and_text_only_keeps_only_the_text_components():
    assert weights(SETTINGS).sum() == pytest.approx(1)
    text_only = weights(SETTINGS, text_only=True)
    assert list(text_only[2:]) == [0, 0, 0] and text_only.sum() == pytest.approx(1)  # votes, verified, recency
    with pytest.raises(ValueError):
        weights(Settings(weight_model=0, weight_substance=0, weight_votes=0, weight_verified=0, weight_recency=0))


def test_relevance_adds_every_relevance_column_and_follows_the_weights():
    scored = table(
        word_count=[100, 0],
        helpful_votes=[5, 0],
        age_days=[100.0, 100.0],
        verified_purchase=[True, None],
        rel_model=[0.5, 0.5],
    )
    out = relevance(scored, SETTINGS, AS_OF)
    assert {name for name, _ in RELEVANCE_FIELDS} | {"age_days"} <= set(out.schema.names)
    score = out.column("relevance_score").to_pylist()
    assert score[0] > score[1]
    length_only = relevance(
        scored, Settings(weight_model=0, weight_votes=0, weight_verified=0, weight_recency=0, weight_substance=1), AS_OF
    )
    assert length_only.column("relevance_score").to_pylist()[1] == 0.0


def test_model_outputs_score_each_distinct_text_once_and_name_their_classifier():
    model = FakeClassifier()
    cleaned = pd.DataFrame({"title": ["t", "t", None], "text": ["x", "x", "y"]}, index=[7, 8, 9])
    out = model_outputs(cleaned, model)
    assert sorted(model.seen) == ["t. x", "y"]  # a text repeated in the batch reaches the model once
    assert {name for name, _ in MODEL_FIELDS} == set(out.columns) and list(out.index) == [7, 8, 9]
    assert list(out["category"]) == ["b", "b", "b"] and out["category_confidence"].iloc[0] == pytest.approx(0.75)
    assert json.loads(out["label_scores"].iloc[0]) == {"a": 0.25, "b": 0.75}
    assert out["content_hash"].iloc[0] == out["content_hash"].iloc[1] == content_hash("t. x", "fake-v1")
    assert set(out["model_fingerprint"]) == {"fake-v1"}
    assert content_hash("x", "m1") != content_hash("x", "m2")


def test_ndcg_by_hand():
    gains = np.array([0.0, 1.0, 3.0])
    assert ndcg_at_k(np.array([0.1, 0.2, 0.3]), gains) == pytest.approx(1.0)
    worst = (0 + 1 / math.log2(3) + 3 / math.log2(4)) / (3 + 1 / math.log2(3))
    assert ndcg_at_k(np.array([0.3, 0.2, 0.1]), gains) == pytest.approx(worst)
    assert math.isnan(ndcg_at_k(np.array([1.0, 2.0]), np.zeros(2)))
