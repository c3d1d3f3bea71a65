"""Fits the topic head the classifier ships (services/classifier/topic_head.npz, mentions.TopicHead).

    python -m research.topics.fit_topics --train FOLDER --dev FOLDER [--out services/classifier/topic_head.npz]

``--train``: the folder of research/topics/hu_liu.py's ``TRAIN_FILES`` (Ding, Liu & Yu 2008's nine products and
Hu & Liu 2004's fifth, annotated by the same group, cited there); ``--dev``: the folder of its ``DEV_FILES``
(Canon G3, Nokia 6610).
Every choice is made on the development products; the test products (research/topics/evaluate.py) are not read.

Two logistic regressions of a sentence's vector (``Encoder.encode_sentences``: as the classify stage reads a
sentence of a review):

- **Which label**, multinomial, classes balanced: the training sentences whose features map to exactly one
  label, and each label's descriptions in labels.yaml as examples too, each weighing ``DESCRIPTION_WEIGHTS``:
  the labels the training data barely has (delivery and packaging: 1 sentence, durability: 12, content and
  artistry: none) are read from their descriptions. Strength and the descriptions' weight: the pair with the
  best balanced accuracy on the development products.
- **Speaks of a topic or not**, binary, classes balanced: the training sentences with an annotated opinion
  against those without, and the labels' descriptions as sentences that speak of a topic, each weighing
  ``SPEAKS_DESCRIPTION_WEIGHTS``. Without them the head learnt what speaks of a topic in reviews of cameras,
  phones and routers only: "The package arrived two days late." and "It stopped working after three months."
  said nothing. The development products cannot measure that (no delivery, no durability), so the
  descriptions' weight is the largest whose balanced accuracy there is within ``TOLERANCE`` of the best; then
  the strength, and the threshold (folded into its bias), best there at telling sentences with an annotated
  opinion from the rest.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from research.topics import hu_liu
from research.topics.evaluate import topic_scores
from services.classifier.encoders import load_encoder
from services.classifier.mentions import TopicHead
from services.classifier.model import DEFAULT_LABELS, LabelConfig
from shared.settings import get_settings

STRENGTHS = (0.3, 1.0, 3.0, 10.0)
DESCRIPTION_WEIGHTS = (1.0, 3.0, 5.0, 10.0)
SPEAKS_DESCRIPTION_WEIGHTS = (0.0, 3.0, 10.0, 30.0, 100.0)
# Two points: at one, on the stage's read-apart vectors the weight fell to 10, at which "The package arrived two
# days late." said nothing (tests/classifier/test_mentions.py).
TOLERANCE = 0.02


def balanced(score: np.ndarray, positive: np.ndarray, threshold: float) -> float:
    said = score >= threshold
    return float((said[positive].mean() + (~said[~positive]).mean()) / 2)


def choose_threshold(score: np.ndarray, positive: np.ndarray) -> float:
    """The threshold on ``score`` that best tells ``positive`` from the rest (balanced accuracy)."""
    return float(max(np.quantile(score, np.linspace(0.02, 0.98, 97)), key=lambda t: balanced(score, positive, t)))


def fit(x: np.ndarray, y: np.ndarray, extra: np.ndarray, extra_y: np.ndarray, strength: float, weight: float):
    """A logistic regression, classes balanced, of ``x`` (weight 1) and ``extra`` (the descriptions, ``weight``)."""
    from sklearn.linear_model import LogisticRegression

    weights = np.concatenate([np.ones(len(y)), np.full(len(extra_y), weight)])
    model = LogisticRegression(C=strength, max_iter=3000, class_weight="balanced")
    return model.fit(np.concatenate([x, extra]), np.concatenate([y, extra_y]), sample_weight=weights)


def fit_labels(x, y, descriptions: list[np.ndarray], strength: float, weight: float) -> tuple[np.ndarray, np.ndarray]:
    extra_y = np.concatenate([np.full(len(d), k) for k, d in enumerate(descriptions)])
    model = fit(x, y, np.concatenate(descriptions), extra_y, strength, weight)
    return model.coef_.astype(np.float32), model.intercept_.astype(np.float32)


def fit_speaks(
    x, annotated, descriptions: list[np.ndarray], strength: float, weight: float
) -> tuple[np.ndarray, float]:
    extra = np.concatenate(descriptions)
    model = fit(x, annotated, extra, np.ones(len(extra), dtype=bool), strength, weight)
    return model.coef_[0].astype(np.float32), float(model.intercept_[0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m research.topics.fit_topics",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--train", type=Path, required=True, help="the folder of hu_liu.TRAIN_FILES")
    parser.add_argument("--dev", type=Path, required=True, help="the folder of hu_liu.DEV_FILES")
    parser.add_argument("--out", type=Path, default=DEFAULT_LABELS.with_name("topic_head.npz"))
    args = parser.parse_args(argv)
    settings = get_settings()
    config = LabelConfig.load(settings.labels_file)
    labels = list(config.labels)
    encoder = load_encoder(settings)  # the configured backend: the head reads that backend's vectors
    train, dev = hu_liu.read(args.train, hu_liu.TRAIN_FILES), hu_liu.read(args.dev, hu_liu.DEV_FILES)
    x_train, x_dev = encoder.encode_sentences([s.text for s in train]), encoder.encode_sentences([s.text for s in dev])
    descriptions = [encoder.encode_sentences(d) for d in config.labels.values()]
    one = hu_liu.single_topic(train)
    y = np.array([labels.index(next(iter(train[i].topics))) for i in one])

    def dev_balanced(weights: np.ndarray, bias: np.ndarray) -> float:
        return topic_scores(labels, dev, (x_dev @ weights.T + bias).argmax(axis=1))["balanced"]

    grid = {
        (c, w): dev_balanced(*fit_labels(x_train[one], y, descriptions, c, w))
        for c in STRENGTHS
        for w in DESCRIPTION_WEIGHTS
    }
    strength, weight = max(grid, key=grid.get)
    weights, bias = fit_labels(x_train[one], y, descriptions, strength, weight)

    annotated = np.array([s.annotated for s in train])
    dev_annotated = np.array([s.annotated for s in dev])
    speaks_grid = {}
    for c in STRENGTHS:
        for w in SPEAKS_DESCRIPTION_WEIGHTS:
            direction, intercept = fit_speaks(x_train, annotated, descriptions, c, w)
            score = x_dev @ direction + intercept
            threshold = choose_threshold(score, dev_annotated)
            speaks_grid[(c, w)] = (balanced(score, dev_annotated, threshold), direction, intercept - threshold)
    best = max(v[0] for v in speaks_grid.values())
    speaks_weight = max(w for (_, w), v in speaks_grid.items() if v[0] >= best - TOLERANCE)
    speaks_strength = max(STRENGTHS, key=lambda c: speaks_grid[(c, speaks_weight)][0])
    _, direction, speaks_bias = speaks_grid[(speaks_strength, speaks_weight)]

    head = TopicHead(tuple(labels), weights, bias, direction, speaks_bias)
    head.save(args.out)
    counts = np.bincount(y, minlength=len(labels))
    print(
        f"which label: fitted on {len(one)} training sentences ("
        + ", ".join(f"{label} {n}" for label, n in zip(labels, counts, strict=True))
        + f") and the descriptions; C={strength}, descriptions' weight {weight} (balanced accuracy on the "
        "development products: " + ", ".join(f"C={c} w={w} {v:.3f}" for (c, w), v in grid.items()) + ")"
    )
    print(
        f"speaks of a topic: fitted on {len(train)} training sentences ({annotated.sum()} with an annotated "
        f"opinion) and the descriptions; C={speaks_strength}, descriptions' weight {speaks_weight} (balanced "
        "accuracy on the development products at the threshold chosen there: "
        + ", ".join(f"C={c} w={w} {v[0]:.3f}" for (c, w), v in speaks_grid.items())
        + f"); wrote {args.out} "
        f"({head.digest()})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
