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


def test_mentions_are_sentences_of_the_text_field_read_after_the_title():
    model = FakeClassifier()
    cleaned = pd.DataFrame({"title": ["Nice"], "text": ["Arrived late. Sturdy though!"]})
    out = model_outputs(cleaned, model)
    read = "Nice. Arrived late. Sturdy though!"
    # the model reads the title for context; the spans it pools over are the text's sentences in what it reads
    assert model.seen == [read] and [read[a:b] for a, b in model.spans[0]] == ["Arrived late.", "Sturdy though!"]
    # the stored offsets are into the text field, what the storefront shows
    text, mentions = cleaned["text"].iloc[0], out["mentions"].iloc[0]
    assert [text[m["start"] : m["end"]] for m in mentions] == ["Arrived late.", "Sturdy though!"]
    assert out["topics"].iloc[0] == ["b"]


def test_the_one_topic_is_the_most_discussed_and_the_whole_review_s_label_without_one():
    cleaned = pd.DataFrame({"title": [None], "text": ["Cheap. Good value. Broke."]})
    # every sentence says "a" though the whole review is most like "b": the review's topic is "a"
    out = model_outputs(cleaned, FakeClassifier(sentence_topic="a"))
    assert out["category"].iloc[0] == "a" and out["category_confidence"].iloc[0] == pytest.approx(0.25)
    # every sentence abstained: the review keeps its most similar label, and has no topics
    out = model_outputs(cleaned, FakeClassifier(sentence_topic=None))
    assert out["category"].iloc[0] == "b" and out["topics"].iloc[0] == []
    assert [m["topic"] for m in out["mentions"].iloc[0]] == [None, None, None]
