"""Fits the sentiment read-out of a sentence's vector (services/classifier/mentions.py, SentimentProbe).

    python -m research.topics.fit_sentiment FILE_OR_FOLDER... [--out services/classifier/sentiment_probe.npz]

No public sentence-level sentiment labels are fitted on: the weak labels are the shared data's star ratings
read sentence by sentence with a short list of opinion words written for this file (``POSITIVE_WORDS``,
``NEGATIVE_WORDS``): a sentence of a 1-star review with a negative word and no positive one is negative, of a
5-star review with a positive word and no negative one positive, and a sentence of a 1-, 3- or 5-star review
with no opinion word at all neutral ("I bought it for my son."); the rest (mixed, or against its stars) is
left out. Star ratings alone given to every sentence of the review taught "how satisfied is the reviewer",
not "does this sentence say something good or bad": it read sentences without an opinion as negative two
times in three, and 2- and 4-star reviews (milder, more mixed) did worse than 1 and 5 alone on the
development products (docs/relevance.md). The vectors are those the classify stage computes: each sentence
pooled from its review's forward pass (Encoder.encode_spans). A multinomial logistic regression, classes
balanced; its strength C is chosen on the products outside the training half (research/relevance/
fit_probe.py's split), by the balanced agreement with the same weak labels there. The evaluation
(research/topics/evaluate.py) is on other, human-labelled data.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from research.relevance.fit_probe import in_training_half
from research.relevance.reviews import read_reviews
from services.classifier.encoders import Encoder, load_encoder
from services.classifier.mentions import SENTIMENTS, SentimentProbe
from services.classifier.model import DEFAULT_LABELS
from services.classifier.scoring import review_spans
from shared.settings import get_settings

PER_RATING = {1: 1500, 3: 800, 5: 1500}  # reviews drawn per star rating and half (1 star is the scarcest)
STRENGTHS = (0.1, 0.3, 1.0, 3.0, 10.0)

# Common English opinion words, written for this file: enough to tell a sentence that judges from one that
# narrates, not a sentiment model. Negations count as negative: in a 5-star review "not" usually hedges.
POSITIVE_WORDS = frozenset(
    """good great excellent amazing awesome love loved loves perfect perfectly nice best better happy pleased
    recommend recommended wonderful fantastic beautiful beautifully easy fast sturdy solid impressive impressed
    favorite enjoy enjoyed enjoying superb terrific outstanding brilliant pleasant comfortable reliable works
    worth glad satisfied gorgeous lovely cute fun cool incredible fine helpful smooth sharp clear crisp bright
    well value bargain quality durable gem classic masterpiece flawless exceeded stunning elegant handy
    convenient""".split()
)
NEGATIVE_WORDS = frozenset(
    """bad poor terrible awful horrible worst worse hate hated disappointed disappointing disappointment broke
    broken break breaks cheap cheaply flimsy useless waste junk garbage crap return returned returning refund
    problem problems issue issues defective fail failed fails failure annoying unfortunately sadly mediocre weak
    slow ugly uncomfortable difficult hard confusing noisy leak leaks leaked stopped dead died not never no
    don't doesn't didn't won't can't wouldn't isn't wasn't aren't nothing lacks lacking lack overpriced
    expensive fake damaged missing wrong misleading avoid regret sucks stinks boring dull blurry""".split()
)
_WORD = re.compile(r"[a-z']+")


def weak_class(sentence: str, rating: int) -> int:
    """0 negative, 1 neutral, 2 positive (SENTIMENTS' rows), -1 left out: see the module's docstring."""
    words = set(_WORD.findall(sentence.lower().replace("\u2019", "'")))
    positive, negative = bool(words & POSITIVE_WORDS), bool(words & NEGATIVE_WORDS)
    if not positive and not negative:
        return 1
    if rating == 1 and negative and not positive:
        return 0
    if rating == 5 and positive and not negative:
        return 2
    return -1


def draw(df: pd.DataFrame) -> pd.DataFrame:
    return pd.concat(
        [
            df[df["rating"] == r].sample(n=min(n, int((df["rating"] == r).sum())), random_state=0)
            for r, n in PER_RATING.items()
        ]
    )


def sentence_rows(encoder: Encoder, df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(sentence vectors, their weak class) for the sentences of ``df``'s reviews a weak label is given."""
    texts, spans = review_spans(df)
    _, pieces, covered = encoder.encode_spans(texts, spans)
    weak = np.array(
        [
            weak_class(text[start:end], rating)
            for text, review, rating in zip(texts, spans, df["rating"], strict=True)
            for start, end in review
        ],
        dtype=int,
    )
    kept = covered & (weak >= 0)
    return pieces[kept], weak[kept]


def fit(x: np.ndarray, y: np.ndarray, strength: float) -> SentimentProbe:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=strength, max_iter=3000, class_weight="balanced")
    model.fit(x, y)
    return SentimentProbe(model.coef_.astype(np.float32), model.intercept_.astype(np.float32))


def agreement(probe: SentimentProbe, x: np.ndarray, y: np.ndarray) -> float:
    """Class-balanced share of sentences whose read-out is their weak class."""
    hit = probe.sentiment(x) == SENTIMENTS[y]
    return float(np.mean([hit[y == k].mean() for k in range(3)]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m research.topics.fit_sentiment",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("paths", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=DEFAULT_LABELS.with_name("sentiment_probe.npz"))
    args = parser.parse_args(argv)
    df = read_reviews(args.paths)
    training = df["product_id"].map(in_training_half)
    encoder = load_encoder(get_settings())  # the configured backend: the probe reads that backend's vectors
    fit_rows = sentence_rows(encoder, draw(df[training]))
    check_rows = sentence_rows(encoder, draw(df[~training]))
    scores = {c: agreement(fit(*fit_rows, c), *check_rows) for c in STRENGTHS}
    best = max(scores, key=scores.get)
    probe = fit(*fit_rows, best)
    probe.save(args.out)
    print(
        f"fitted on {len(fit_rows[0])} sentences (negative, neutral, positive: "
        f"{np.bincount(fit_rows[1], minlength=3).tolist()}) "
        f"of the training half's products; C={best} "
        f"(balanced agreement with the weak labels on the other half: "
        + ", ".join(f"C={c} {s:.3f}" for c, s in scores.items())
        + f"); wrote {args.out} ({probe.digest()})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
