"""The sentiment read-out's weak labels: a review's stars given only to its sentences that judge."""

from __future__ import annotations

from research.topics.fit_sentiment import weak_class


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
