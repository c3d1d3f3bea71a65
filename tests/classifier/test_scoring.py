"""Model outputs (plain functions)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from services.classifier.scoring import content_hash, model_outputs
from shared.schemas import MODEL_FIELDS
from tests.classifier.fakes import FakeClassifier


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
