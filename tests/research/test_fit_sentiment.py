"""The sentiment read-out's training rows: human labels as the evaluation reads them, and the weak labels (a
review's stars given only to its sentences that judge)."""

from __future__ import annotations

import numpy as np

from research.topics import hu_liu
from research.topics.fit_sentiment import features, labelled, measures, weak_class, with_neutral_bias
from services.classifier.mentions import SentimentProbe


def test_a_sentence_without_an_opinion_word_is_neutral_whatever_the_stars():
    assert weak_class("I bought it for my son last Christmas.", 5) == 1
    assert weak_class("I bought it for my son last Christmas.", 1) == 1


def test_a_judging_sentence_takes_its_review_s_extreme_stars_when_they_agree():
    assert weak_class("The picture is great and it was easy to set up.", 5) == 2
    assert weak_class("It broke after a week, what a waste.", 1) == 0
    assert weak_class("It doesn\u2019t fit.", 1) == 0  # a typographic apostrophe is read as one


def test_mixed_or_contrary_sentences_and_middle_stars_are_left_out():
    assert weak_class("Good sound but the battery is poor.", 5) == -1  # mixed
    assert weak_class("The picture is great.", 1) == -1  # against its stars: sarcasm, or another product
    assert weak_class("The picture is great.", 3) == -1


def test_human_labels_are_the_evaluation_s_gold_and_cancelled_opinions_are_left_out(tmp_path):
    (tmp_path / "p.txt").write_text(
        "[t]a title\n"
        "zoom[+2]##the zoom is great .\n"
        "battery[-1], price[+1]##the battery is weak but it is cheap .\n"
        "##i bought it in may .\n"
        "camera[-2]##it died .\n"
    )
    texts, y = labelled(hu_liu.read(tmp_path, ("p.txt",)))
    assert texts == ["the zoom is great .", "i bought it in may .", "it died ."]
    assert y.tolist() == [2, 1, 0]  # SentimentProbe's rows: negative, neutral, positive


def test_the_neutral_bias_moves_only_the_three_class_measures():
    probe = SentimentProbe(np.eye(3, dtype=np.float32), np.zeros((3, 4), dtype=np.float32), np.zeros(3, np.float32))
    # leaning negative, positive, slightly positive; then four lexicon scores (zero weights here)
    x = np.array([[1.0, 0.6, 0, 0, 0, 0, 0], [0, 0.6, 1.0, 0, 0, 0, 0], [0.2, 0.3, 0.4, 0, 0, 0, 0]], np.float32)
    y = np.array([0, 2, 1])
    # (positive vs negative, three classes, balanced, negative recall)
    assert measures(probe, x, y) == (1.0, 2 / 3, 2 / 3, 1.0)
    assert measures(with_neutral_bias(probe, 0.2), x, y) == (1.0, 1.0, 1.0, 1.0)  # the third now reads neutral
    assert measures(with_neutral_bias(probe, 0.5), x, y) == (1.0, 1 / 3, 1 / 3, 0.0)  # too much: every one neutral


def test_the_lexicon_columns_are_read_with_the_lexicon_weights():
    lexicon = np.zeros((3, 4), dtype=np.float32)
    lexicon[0, 0] = 5.0  # VADER's neg score pulls towards negative
    probe = SentimentProbe(np.zeros((3, 2), np.float32), lexicon, np.array([0, 1, 0], np.float32))
    x = features(np.zeros((2, 2), dtype=np.float32), ["The only problem is the battery life.", "It is a camera."])
    assert x.shape == (2, 6)
    assert measures(probe, x, np.array([0, 1]))[1] == 1.0
