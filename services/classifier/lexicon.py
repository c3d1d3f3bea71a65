"""Word-level sentiment evidence for a sentence: VADER's scores, read beside its vector by the sentiment
read-out (services/classifier/mentions.py, SentimentProbe).

VADER (C.J. Hutto and Eric Gilbert, "VADER: A Parsimonious Rule-based Model for Sentiment Analysis of Social
Media Text", ICWSM 2014; the ``vaderSentiment`` package, MIT licence) is a hand-rated word lexicon with rules
for negation ("not good"), intensifiers ("very"), "but" and capitals, built from social-media text: it knows
that "the only problem is the battery life" complains, which a 384-d sentence vector reads as a fact about a
battery. Independent of the data the read-out is measured on (docs/relevance.md).
"""

from __future__ import annotations

from functools import cache

import numpy as np

FEATURES = ("neg", "neu", "pos", "compound")  # VADER's scores, in the read-out's lexicon columns' order


@cache
def _analyzer():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()  # reads its lexicon file once per process


def lexicon_scores(texts: list[str]) -> np.ndarray:
    """(n, len(FEATURES)): each sentence's VADER scores (neg, neu, pos in [0, 1] summing to 1; compound in
    [-1, 1])."""
    analyzer = _analyzer()
    scores = np.zeros((len(texts), len(FEATURES)), dtype=np.float32)
    for row, text in enumerate(texts):
        said = analyzer.polarity_scores(text)
        scores[row] = [said[f] for f in FEATURES]
    return scores
