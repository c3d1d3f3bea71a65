"""The sentiment read-out's training rows: human labels as the evaluation reads them, and the weak labels (a
review's stars given only to its sentences that judge)."""

from __future__ import annotations

import numpy as np
import pytest

from research.topics import hu_liu, tackstrom
from research.topics.fit_sentiment import best_of, features, labelled, measures, weak_class, with_neutral_bias
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


def test_the_choice_keeps_half_the_complaints_recalled():
    # (positive vs negative, three classes, balanced, negative recall) of two candidates
    measured = {"calls complaints neutral": (0.9, 0.8, 0.6, 0.3), "recalls them": (0.9, 0.7, 0.65, 0.5)}
    assert best_of(measured) == "recalls them"  # the first has the better mean, but recalls too few
    assert best_of({"only one, below the floor": (0.9, 0.8, 0.6, 0.3)}) == "only one, below the floor"


def test_taeckstroem_s_labels_are_read_as_the_evaluation_s_classes_and_mixed_is_left_out(tmp_path):
    (tmp_path / "finegrained.txt").write_text(
        "music_pos_1\nmusic\t5\npos\tA wonderful record.\nnr\tIt came out in 1979.\n\n"
        "dvds_neg_2\ndvds\t1\nneg\tThe transfer is awful.\nmix\tGreat cast, weak script.\nneu\tIt runs 98 minutes.\n",
        encoding="utf-8",
    )
    texts, y, domains = tackstrom.read(tmp_path / "finegrained.txt")
    assert texts == ["A wonderful record.", "It came out in 1979.", "The transfer is awful.", "It runs 98 minutes."]
    assert y.tolist() == [2, 1, 0, 1]  # SentimentProbe's rows: negative, neutral, positive
    assert domains == ["music", "music", "dvds", "dvds"]


def test_an_unknown_label_is_refused_with_the_line(tmp_path):
    (tmp_path / "f.txt").write_text("x\nbooks\t3\nmaybe\tHmm.\n", encoding="utf-8")
    with pytest.raises(ValueError, match="maybe"):
        tackstrom.read(tmp_path / "f.txt")
