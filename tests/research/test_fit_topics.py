"""Fitting the topic head: the descriptions stand for what the training data lacks; thresholds on the dev half."""

from __future__ import annotations

import numpy as np

from research.topics import hu_liu
from research.topics.fit_topics import choose_threshold, fit_labels, fit_speaks

RNG = np.random.default_rng(0)


def around(direction: int, n: int, dim: int = 6) -> np.ndarray:
    x = RNG.normal(0, 0.1, (n, dim))
    x[:, direction] += 1
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_a_label_without_training_sentences_is_read_from_its_descriptions():
    # two labels have training sentences, the third only its descriptions
    x, y = np.concatenate([around(0, 40), around(1, 40)]), np.repeat([0, 1], 40)
    weights, bias = fit_labels(x, y, [around(0, 3), around(1, 3), around(2, 3)], strength=3.0, weight=10.0)
    assert ((around(2, 20) @ weights.T + bias).argmax(axis=1) == 2).all()


def test_the_descriptions_teach_speaks_of_a_topic_what_the_training_data_lacks():
    # sentences with an opinion along 0, without along 1; the descriptions along 2 (a topic never annotated)
    x, annotated = np.concatenate([around(0, 40), around(1, 40)]), np.repeat([True, False], 40)
    descriptions = [around(2, 6)]
    unseen = around(2, 20)
    without = fit_speaks(x, annotated, descriptions, strength=3.0, weight=0.0)
    with_them = fit_speaks(x, annotated, descriptions, strength=3.0, weight=30.0)
    assert (unseen @ with_them[0] + with_them[1] > 0).all()
    assert (unseen @ with_them[0]).mean() > (unseen @ without[0]).mean() + 1


def test_the_threshold_is_the_one_that_best_tells_the_two_apart():
    score = np.array([0.1, 0.2, 0.3, 0.6, 0.7, 0.8])
    threshold = choose_threshold(score, score > 0.5)
    assert 0.3 < threshold <= 0.6


def test_single_topic_sentences_are_those_a_topic_is_measured_and_fitted_on():
    def sentence(*topics: str) -> hu_liu.Sentence:
        return hu_liu.Sentence(0, "x", frozenset(topics), 0, bool(topics))

    sentences = [sentence("ease of use"), sentence(), sentence(hu_liu.GENERAL), sentence("durability", "ease of use")]
    assert hu_liu.single_topic(sentences) == [0]
