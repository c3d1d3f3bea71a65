"""Sentence topics and sentiment measured on human-labelled public data (research/topics/hu_liu.py).

    python -m research.topics.evaluate --data FOLDER   # Feature-based-opinion-mining's Datasets/ folder

Each review of the data is read as the classify stage reads one: its sentences joined into one text, one
forward pass, each sentence's vector pooled over its tokens (``Encoder.encode_spans``); and, for comparison,
each sentence encoded on its own. The abstain threshold is chosen on the development half (two products) and
every figure is of the test half (two other products): the threshold that best separates sentences with an
annotated opinion from those without, on the development half only. Sentences past the truncation (the model
does not read them) are left out and counted.

Topic: over the test sentences whose features map to exactly one label, the top label (no abstaining) against
it, per label, balanced accuracy (the mean of the per-label accuracies, over labels with at least MIN_SUPPORT
sentences) and macro-F1 over them; abstaining: its rate over all sentences and its precision (the abstained
sentences that carry no annotated opinion). Sentiment: the sign of a sentence's annotated opinions, neutral
for a sentence without one: positive against negative (the read-out's two rows), and the three classes.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from research.topics import hu_liu
from services.classifier.mentions import SENTIMENTS
from services.classifier.model import EmbeddingClassifier, load_classifier
from shared.settings import get_settings

MIN_SUPPORT = 10
THRESHOLDS = np.round(np.arange(0.10, 0.60, 0.01), 2)


def reviews(sentences: list[hu_liu.Sentence]) -> tuple[list[str], list[list[tuple[int, int]]], list[int]]:
    """Texts, spans and, per span, its sentence's index: the sentences of a review joined by a space."""
    texts, spans, order = [], [], []
    by_review: dict[int, list[int]] = {}
    for i, s in enumerate(sentences):
        by_review.setdefault(s.review, []).append(i)
    for members in by_review.values():
        text, review_spans = "", []
        for i in members:
            start = len(text) + (1 if text else 0)
            text = f"{text} {sentences[i].text}" if text else sentences[i].text
            review_spans.append((start, len(text)))
            order.append(i)
        texts.append(text)
        spans.append(review_spans)
    return texts, spans, order


def vectors(classifier: EmbeddingClassifier, sentences: list[hu_liu.Sentence], pooled: bool):
    """(sentence vectors, covered), in the sentences' order."""
    if not pooled:
        return classifier.encoder.encode([s.text for s in sentences]), np.ones(len(sentences), dtype=bool)
    texts, spans, order = reviews(sentences)
    _, pieces, covered = classifier.encoder.encode_spans(texts, spans)
    out, cov = np.zeros_like(pieces), np.zeros(len(sentences), dtype=bool)
    out[order], cov[order] = pieces, covered
    return out, cov


def choose_threshold(similarity: np.ndarray, annotated: np.ndarray) -> float:
    """The threshold that best tells annotated sentences from the rest (balanced accuracy), on the dev half."""

    def balanced(t: float) -> float:
        topical = similarity >= t
        return (topical[annotated].mean() + (~topical[~annotated]).mean()) / 2

    return float(max(THRESHOLDS, key=balanced))


def table(rows: list[str], cols: list[str], counts: Counter) -> str:
    head = "| gold \\ predicted | " + " | ".join(cols) + " |\n|---|" + "---|" * len(cols)
    body = "\n".join(f"| {r} | " + " | ".join(str(counts[(r, c)]) for c in cols) + " |" for r in rows)
    return f"{head}\n{body}"


def topic_report(classifier: EmbeddingClassifier, sentences, pieces, threshold: float) -> list[str]:
    labels = classifier.labels
    similarity = pieces @ classifier.label_vectors.T
    top = similarity.argmax(axis=1)
    single = [i for i, s in enumerate(sentences) if len(s.topics) == 1 and hu_liu.GENERAL not in s.topics]
    gold = [next(iter(sentences[i].topics)) for i in single]
    predicted = [labels[top[i]] for i in single]
    support = Counter(gold)
    measured = [label for label in labels if support[label] >= MIN_SUPPORT]
    recall = {
        label: np.mean([p == g for p, g in zip(predicted, gold, strict=True) if g == label]) for label in measured
    }

    def f1(label: str) -> float:
        tp = sum(p == g == label for p, g in zip(predicted, gold, strict=True))
        fp = sum(p == label != g for p, g in zip(predicted, gold, strict=True))
        fn = support[label] - tp
        return 2 * tp / max(2 * tp + fp + fn, 1)

    abstained = similarity.max(axis=1) < threshold
    annotated = np.array([s.annotated for s in sentences])
    right = np.array([p == g for p, g in zip(predicted, gold, strict=True)])
    kept = ~abstained[single]
    lines = [
        f"topic, top label, {len(single)} single-topic sentences: accuracy {right.mean():.1%}; balanced over "
        f"{len(measured)} labels with ≥ {MIN_SUPPORT} sentences {np.mean(list(recall.values())):.1%}; "
        f"macro-F1 {np.mean([f1(label) for label in measured]):.3f}",
        "per label: " + ", ".join(f"{label} {recall[label]:.0%} (n={support[label]})" for label in measured),
        "not measured (fewer sentences): "
        + ", ".join(f"{label} (n={support[label]})" for label in labels if label not in measured),
        f"abstain below {threshold}: rate {abstained.mean():.1%} of {len(sentences)} sentences; precision "
        f"{(~annotated[abstained]).mean():.1%} (abstained without an annotated opinion); "
        f"single-topic sentences kept {kept.mean():.1%}, their topic right {right[kept].mean():.1%}",
        "",
        table(measured, labels, Counter(zip(gold, predicted, strict=True))),
    ]
    return lines


def sentiment_report(classifier: EmbeddingClassifier, sentences, pieces) -> list[str]:
    scores = classifier.sentiment.scores(pieces, [s.text for s in sentences])
    gold = np.array([s.sentiment if s.sentiment is not None else 9 for s in sentences])
    polar = np.isin(gold, (-1, 1))
    binary = np.where(scores[:, 2] > scores[:, 0], 1, -1)
    three = SENTIMENTS[scores.argmax(axis=1)]
    kept = gold != 9
    names = {-1: "negative", 0: "neutral", 1: "positive"}
    per_class = {k: (three[gold == k] == k).mean() for k in (-1, 0, 1)}
    return [
        f"sentiment, positive vs negative ({polar.sum()} sentences with an opinion): "
        f"{(binary[polar] == gold[polar]).mean():.1%}",
        f"three classes ({kept.sum()} sentences; no opinion is neutral): {(three[kept] == gold[kept]).mean():.1%}; "
        f"balanced {np.mean(list(per_class.values())):.1%} ("
        + ", ".join(f"{names[k]} {v:.0%}" for k, v in per_class.items())
        + ")",
        "",
        table(
            list(names.values()),
            list(names.values()),
            Counter((names[g], names[p]) for g, p in zip(gold[kept], three[kept], strict=True)),
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m research.topics.evaluate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--data", type=Path, required=True, help="the folder of CanonG3.txt, Nokia6610.txt, Nikon.txt, DVD.txt"
    )
    args = parser.parse_args(argv)
    classifier = load_classifier(get_settings())
    if not isinstance(classifier, EmbeddingClassifier):
        raise SystemExit("the sentence analysis is the embedding backend's")
    dev, test = hu_liu.read(args.data, hu_liu.DEV_FILES), hu_liu.read(args.data, hu_liu.TEST_FILES)
    for pooled in (True, False):
        way = "pooled from the review's forward pass (shipped)" if pooled else "each sentence encoded on its own"
        dev_pieces, dev_covered = vectors(classifier, dev, pooled)
        chosen = choose_threshold(
            (dev_pieces @ classifier.label_vectors.T).max(axis=1)[dev_covered],
            np.array([s.annotated for s in dev])[dev_covered],
        )
        pieces, covered = vectors(classifier, test, pooled)
        kept = [s for s, c in zip(test, covered, strict=True) if c]
        print(
            f"\n## {way}\n\nabstain threshold chosen on the development half: {chosen} (shipped: "
            f"{classifier.abstain_below}); test half: {len(kept)} sentences read, "
            f"{len(test) - len(kept)} past the truncation\n"
        )
        print("\n".join(topic_report(classifier, kept, pieces[covered], classifier.abstain_below)))
        print()
        print("\n".join(sentiment_report(classifier, kept, pieces[covered])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
