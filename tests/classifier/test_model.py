"""The zero-shot classifiers: the real MiniLM weights, a tiny NLI model built here, bad input and paths."""

from __future__ import annotations

import numpy as np
import pytest

from services.classifier.mentions import TopicHead
from services.classifier.model import DEFAULT_LABELS, LabelConfig, ModelLoadError, load_classifier
from shared.settings import Settings


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("The package arrived two weeks late and the box was crushed.", "delivery and packaging"),
        ("It stopped working after a month, it broke in half.", "durability"),
        ("Customer service never answered my refund request.", "customer service"),
        ("The vocals and the guitar solos on this album are stunning.", "content and artistry"),
    ],
)
def test_clear_reviews_get_their_topic(classifier, text, label):
    probs = classifier.infer([text])[0, : len(classifier.labels)]
    assert classifier.labels[int(probs.argmax())] == label
    assert probs.max() > 0.5


def test_outputs_are_probabilities_then_a_usefulness_signal(classifier):
    out = classifier.infer(
        [
            "Great.",
            "I used this blender daily for a year: the motor is strong, the lid leaks "
            "a little, and cleaning takes two minutes. Worth it at this price.",
        ]
    )
    n = len(classifier.labels)
    assert out.shape == (2, n + 1)
    assert np.allclose(out[:, :n].sum(axis=1), 1, atol=1e-5)
    assert 0 <= out[:, n].min() and out[:, n].max() <= 1
    assert out[1, n] > out[0, n]  # the specific review is more useful than "Great."


@pytest.mark.parametrize(
    "text",
    ["", "   ", "😀🔥👍", "<br/><p></p>", "x" * 100_000, "Ce disque est magnifique", "这个产品很好用", "\x00\x01"],
)
def test_bad_input_is_classified_without_a_crash(classifier, text):
    out = classifier.infer([text])
    assert np.isfinite(out).all()
    if not any(ch.isalnum() for ch in text):  # nothing to read: the lowest confidence there is
        assert np.allclose(out[0, :-1], 1 / len(classifier.labels)) and out[0, -1] == 0


def test_a_missing_model_path_fails_at_load_with_a_clear_message(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_classifier(Settings(model_path=str(tmp_path / "nowhere")))


def test_a_corrupt_model_fails_at_load_with_a_clear_message(tmp_path):
    (tmp_path / "config.json").write_text("{ not json")
    with pytest.raises(ModelLoadError, match="could not be loaded"):
        load_classifier(Settings(model_path=str(tmp_path)))


def test_a_broken_labels_file_fails_at_load(tmp_path):
    bad = tmp_path / "labels.yaml"
    bad.write_text("labels: [just, a, list]\n")
    with pytest.raises(ModelLoadError, match="labels file"):
        LabelConfig.load(bad)


def test_labels_are_configuration_and_their_topic_head_is_fitted_for_them(tmp_path, settings):
    custom = tmp_path / "labels.yaml"
    custom.write_text(
        "labels:\n  sound: [The sound is great.]\n  price: [Cheap and good value.]\n"
        "usefulness:\n  informative: [A detailed review.]\n  uninformative: [Ok.]\n"
        f"mentions:\n  topics: head.npz\n  sentiment: {DEFAULT_LABELS.with_name('sentiment_probe.npz')}\n"
    )
    shipped = TopicHead.load(DEFAULT_LABELS.with_name("topic_head.npz"))
    shipped.save(tmp_path / "head.npz")  # fitted for the shipped labels, not these
    with pytest.raises(ModelLoadError, match="topic head .*head.npz was fitted for the labels .*refit"):
        load_classifier(settings.model_copy(update={"labels_file": custom}))
    TopicHead(("sound", "price"), shipped.weights[:2], shipped.bias[:2], shipped.speaks, 0.0).save(
        tmp_path / "head.npz"
    )
    classifier = load_classifier(settings.model_copy(update={"labels_file": custom}))
    assert classifier.labels == ["sound", "price"]
    assert classifier.fingerprint != load_classifier(settings).fingerprint  # a new cache namespace


def tiny_nli_model(folder):
    """A 2-layer BERT with random weights and an entailment head, saved with its own tokenizer."""
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    words = (
        "this review is about a the product quality value for money delivery and packaging customer "
        "service ease of use durability fit appearance content artistry detailed specific vague short "
        "great it broke arrived late sound"
    )
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", *dict.fromkeys(words.split())]
    # the vocabulary as a mapping: given as a file, transformers 5 reads every word as [UNK]
    BertTokenizerFast(vocab={token: i for i, token in enumerate(vocab)}).save_pretrained(folder)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=3,
        id2label={0: "entailment", 1: "neutral", 2: "contradiction"},
        label2id={"entailment": 0, "neutral": 1, "contradiction": 2},
    )
    BertForSequenceClassification(config).save_pretrained(folder)
    return folder


def test_the_nli_backend_loads_and_batches_a_local_model(tmp_path, settings):
    model = tiny_nli_model(tmp_path)
    classifier = load_classifier(
        settings.model_copy(update={"classifier_backend": "nli", "nli_model": str(model), "classify_batch_size": 2})
    )
    texts = ["it broke", "arrived late", "great sound", "", "😀"]
    out = classifier.infer(texts)
    n = len(classifier.labels)
    assert out.shape == (5, n + 1)
    assert np.allclose(out[:, :n].sum(axis=1), 1, atol=1e-4)
    assert np.allclose(out[3:, :n], 1 / n)  # nothing to read: neutral, not sent to the model


def test_the_nli_backend_without_a_model_is_a_clear_error(settings):
    with pytest.raises(ModelLoadError, match="NLI_MODEL"):
        load_classifier(settings.model_copy(update={"classifier_backend": "nli", "nli_model": ""}))
