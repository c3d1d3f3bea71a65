"""The shipped read-outs (usefulness, sentiment, topic head): the labels use them, a broken one is refused."""

from __future__ import annotations

import numpy as np
import pytest

from services.classifier.lexicon import FEATURES
from services.classifier.mentions import SentimentProbe, TopicHead
from services.classifier.model import DEFAULT_LABELS, LabelConfig, ModelLoadError, load_classifier
from services.classifier.probe import Probe
from shared.settings import Settings


def shipped_labels_text(but: str = "") -> str:
    """The shipped labels.yaml with its read-outs' paths absolute (for a copy elsewhere), but ``but``'s."""
    text = DEFAULT_LABELS.read_text()
    for key, name in (
        ("probe", "usefulness_probe.npz"),
        ("sentiment", "sentiment_probe.npz"),
        ("topics", "topic_head.npz"),
    ):
        if key != but:
            text = text.replace(f"{key}: {name}", f"{key}: {DEFAULT_LABELS.with_name(name)}")
    return text


def test_the_shipped_labels_use_the_shipped_probe():
    config = LabelConfig.load(None)
    assert config.probe == DEFAULT_LABELS.with_name("usefulness_probe.npz") and config.probe.is_file()
    assert Probe.load(config.probe).direction.shape == (384,)  # all-MiniLM-L6-v2's embedding size


def test_a_broken_probe_fails_the_load_with_a_clear_message(tmp_path):
    (tmp_path / "probe.npz").write_bytes(b"not a probe")
    labels = tmp_path / "labels.yaml"
    labels.write_text(shipped_labels_text(but="probe").replace("probe: usefulness_probe.npz", "probe: probe.npz"))
    with pytest.raises(ModelLoadError, match="usefulness probe .*probe.npz"):
        load_classifier(Settings(labels_file=labels))


def test_the_shipped_labels_use_the_shipped_sentiment_read_out_and_a_broken_one_is_refused(tmp_path):
    config = LabelConfig.load(None)
    assert config.sentiment == DEFAULT_LABELS.with_name("sentiment_probe.npz")
    probe = SentimentProbe.load(config.sentiment)
    assert probe.weights.shape == (3, 384) and probe.lexicon.shape == (3, len(FEATURES)) and probe.bias.shape == (3,)
    labels = tmp_path / "labels.yaml"
    labels.write_text(
        shipped_labels_text(but="sentiment").replace("sentiment: sentiment_probe.npz", "sentiment: bad.npz")
    )
    (tmp_path / "bad.npz").write_bytes(b"not a probe")
    with pytest.raises(ModelLoadError, match="sentiment probe .*bad.npz"):
        load_classifier(Settings(labels_file=labels))
    np.savez(tmp_path / "bad.npz", weights=probe.weights, bias=probe.bias)  # a read-out without lexicon weights
    with pytest.raises(ModelLoadError, match="sentiment probe .*bad.npz"):
        load_classifier(Settings(labels_file=labels))


def test_another_sentiment_read_out_is_another_classifier(tmp_path, settings):
    shipped = SentimentProbe.load(DEFAULT_LABELS.with_name("sentiment_probe.npz"))
    labels = tmp_path / "labels.yaml"
    labels.write_text(
        shipped_labels_text(but="sentiment").replace("sentiment: sentiment_probe.npz", "sentiment: s.npz")
    )
    fingerprints = []
    for lexicon in (shipped.lexicon, shipped.lexicon * 2):  # the same file, its lexicon weights refitted
        SentimentProbe(shipped.weights, lexicon, shipped.bias).save(tmp_path / "s.npz")
        fingerprints.append(load_classifier(settings.model_copy(update={"labels_file": labels})).fingerprint)
    assert fingerprints[0] != fingerprints[1]  # its outputs differ: the next run is a full run


def test_the_shipped_labels_use_the_shipped_topic_head_and_a_broken_one_is_refused(tmp_path):
    config = LabelConfig.load(None)
    assert config.topics == DEFAULT_LABELS.with_name("topic_head.npz")
    head = TopicHead.load(config.topics)
    assert head.labels == tuple(config.labels) and head.weights.shape == (len(config.labels), 384)
    (tmp_path / "bad.npz").write_bytes(b"not a head")
    labels = tmp_path / "labels.yaml"
    labels.write_text(shipped_labels_text(but="topics").replace("topics: topic_head.npz", "topics: bad.npz"))
    with pytest.raises(ModelLoadError, match="topic head .*bad.npz"):
        load_classifier(Settings(labels_file=labels))


def test_another_topic_head_is_another_classifier(tmp_path, settings):
    shipped = TopicHead.load(DEFAULT_LABELS.with_name("topic_head.npz"))
    labels = tmp_path / "labels.yaml"
    labels.write_text(shipped_labels_text(but="topics").replace("topics: topic_head.npz", "topics: t.npz"))
    fingerprints = []
    for speaks_bias in (shipped.speaks_bias, shipped.speaks_bias + 1):  # the same file, refitted
        TopicHead(shipped.labels, shipped.weights, shipped.bias, shipped.speaks, speaks_bias).save(tmp_path / "t.npz")
        fingerprints.append(load_classifier(settings.model_copy(update={"labels_file": labels})).fingerprint)
    assert fingerprints[0] != fingerprints[1]  # its outputs differ: the next run re-classifies every review
