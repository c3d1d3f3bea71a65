"""Fits the sentiment read-out of a sentence's vector (services/classifier/mentions.py, SentimentProbe).

    python -m research.topics.fit_sentiment FILE_OR_FOLDER... [--out services/classifier/sentiment_probe.npz]

No public sentence-level sentiment labels are fitted on: the weak labels are the shared data's star ratings
(1–2 stars negative, 3 neutral, 4–5 positive), given to every sentence of the review, each sentence weighted
1 / its review's sentence count so a long review counts as much as a short one. The vectors are those the
classify stage computes: each sentence pooled from its review's forward pass (Encoder.encode_spans). A
multinomial logistic regression, classes balanced (the shared data is four fifths positive); its strength C
is chosen on the products outside the training half (research/relevance/fit_probe.py's split), by the
sentences' agreement with their review's stars there. The evaluation (research/topics/evaluate.py) is on
other, human-labelled data.
"""

from __future__ import annotations

import argparse
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

PER_CLASS = 1500  # reviews drawn per weak class and half: the 3-star class is the scarcest
STRENGTHS = (0.1, 0.3, 1.0, 3.0, 10.0)


def weak_class(rating: pd.Series) -> np.ndarray:
    """0 negative (1–2 stars), 1 neutral (3), 2 positive (4–5): SENTIMENTS' rows."""
    return np.select([rating <= 2, rating == 3], [0, 1], 2)


def draw(df: pd.DataFrame, per_class: int) -> pd.DataFrame:
    df = df.assign(weak=weak_class(df["rating"]))
    return pd.concat(
        [df[df["weak"] == k].sample(n=min(per_class, int((df["weak"] == k).sum())), random_state=0) for k in range(3)]
    )


def sentence_rows(encoder: Encoder, df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sentence vectors, their weak class, their weight) for the reviews of ``df``."""
    texts, spans = review_spans(df)
    _, pieces, covered = encoder.encode_spans(texts, spans)
    counts = np.array([len(s) for s in spans])
    weak = np.repeat(df["weak"].to_numpy(), counts)
    weight = np.repeat(1.0 / np.maximum(counts, 1), counts)
    return pieces[covered], weak[covered], weight[covered]


def fit(x: np.ndarray, y: np.ndarray, weight: np.ndarray, strength: float) -> SentimentProbe:
    from sklearn.linear_model import LogisticRegression

    balance = np.bincount(y, weights=weight, minlength=3)
    model = LogisticRegression(C=strength, max_iter=2000)
    model.fit(x, y, sample_weight=weight * (balance.sum() / (3 * balance[y])))
    return SentimentProbe(model.coef_.astype(np.float32), model.intercept_.astype(np.float32))


def agreement(probe: SentimentProbe, x: np.ndarray, y: np.ndarray, weight: np.ndarray) -> float:
    """Weighted, class-balanced share of sentences whose read-out is their review's weak class."""
    hit = probe.sentiment(x) == SENTIMENTS[y]
    return float(np.mean([np.average(hit[y == k], weights=weight[y == k]) for k in range(3)]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m research.topics.fit_sentiment",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("paths", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=DEFAULT_LABELS.with_name("sentiment_probe.npz"))
    parser.add_argument("--per-class", type=int, default=PER_CLASS)
    args = parser.parse_args(argv)
    df = read_reviews(args.paths)
    training = df["product_id"].map(in_training_half)
    encoder = load_encoder(get_settings())  # the configured backend: the probe reads that backend's vectors
    fit_rows = sentence_rows(encoder, draw(df[training], args.per_class))
    check_rows = sentence_rows(encoder, draw(df[~training], args.per_class))
    scores = {c: agreement(fit(*fit_rows, c), *check_rows) for c in STRENGTHS}
    best = max(scores, key=scores.get)
    probe = fit(*fit_rows, best)
    probe.save(args.out)
    print(
        f"fitted on {len(fit_rows[0])} sentences of the training half's products; C={best} "
        f"(balanced agreement with the stars on the other half: "
        + ", ".join(f"C={c} {s:.3f}" for c, s in scores.items())
        + f"); wrote {args.out} ({probe.digest()})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
