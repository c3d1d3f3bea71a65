"""Sentence topics and sentiment measured on human-labelled public data (research/topics/hu_liu.py).

    python -m research.topics.evaluate --data FOLDER   # Feature-based-opinion-mining's Datasets/ folder

Each review of the data is read as the classify stage reads one: its sentences joined into one text, one
forward pass, each sentence's vector pooled over its tokens (``Encoder.encode_spans``: read apart under a
segment mask on the torch backends); and, for comparison, each sentence encoded on its own, over all sentences
and over those the one pass reads (the rest are past the truncation). Every figure is of the test half (two
products; ``--half dev``: the two development products, where research/topics/fit_topics.py and
fit_sentiment.py make their choices), read by the shipped topic head and sentiment read-out. Sentences past
the truncation (the model does not read them) are left out and counted.

Topic: over the test sentences whose features map to exactly one label, the top label (no abstaining) against
it, per label, balanced accuracy (the mean of the per-label accuracies, over labels with at least MIN_SUPPORT
sentences) and macro-F1 over them; abstaining (the topic head's "speaks of a topic"): its rate over all
sentences, its precision (the abstained sentences that carry no annotated opinion) and recall. Sentiment: the
sign of a sentence's annotated opinions, neutral for a sentence without one: positive against negative (the
read-out's two rows), and the three classes.
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


def table(rows: list[str], cols: list[str], counts: Counter) -> str:
    head = "| gold \\ predicted | " + " | ".join(cols) + " |\n|---|" + "---|" * len(cols)
    body = "\n".join(f"| {r} | " + " | ".join(str(counts[(r, c)]) for c in cols) + " |" for r in rows)
    return f"{head}\n{body}"


def topic_scores(labels: list[str], sentences: list[hu_liu.Sentence], top: np.ndarray) -> dict:
    """The top label (``top``: its index, per sentence) against the gold of the single-topic sentences: accuracy,
    balanced accuracy and macro-F1 over the labels with at least MIN_SUPPORT of them, their recall."""
    single = hu_liu.single_topic(sentences)
    gold = [next(iter(sentences[i].topics)) for i in single]
    predicted = [labels[top[i]] for i in single]
    support = Counter(gold)
    measured = [label for label in labels if support[label] >= MIN_SUPPORT]
    right = np.array([p == g for p, g in zip(predicted, gold, strict=True)])
    recall = {label: right[[g == label for g in gold]].mean() for label in measured}

    def f1(label: str) -> float:
        tp = sum(p == g == label for p, g in zip(predicted, gold, strict=True))
        fp = sum(p == label != g for p, g in zip(predicted, gold, strict=True))
        return 2 * tp / max(2 * tp + fp + support[label] - tp, 1)

    return {
        "single": single,
        "gold": gold,
        "predicted": predicted,
        "right": right,
        "support": support,
        "measured": measured,
        "recall": recall,
        "accuracy": float(right.mean()),
        "balanced": float(np.mean(list(recall.values()))),
        "macro_f1": float(np.mean([f1(label) for label in measured])),
    }


def topic_report(classifier: EmbeddingClassifier, sentences, pieces) -> list[str]:
    labels, head = classifier.labels, classifier.topic_head
    scores = topic_scores(labels, sentences, head.probabilities(pieces).argmax(axis=1))
    support, measured, recall, right = scores["support"], scores["measured"], scores["recall"], scores["right"]
    abstained = ~head.speaks_of_a_topic(pieces)
    annotated = np.array([s.annotated for s in sentences])
    kept = ~abstained[scores["single"]]
    return [
        f"topic, top label, {len(scores['single'])} single-topic sentences: accuracy {scores['accuracy']:.1%}; "
        f"balanced over {len(measured)} labels with ≥ {MIN_SUPPORT} sentences {scores['balanced']:.1%}; "
        f"macro-F1 {scores['macro_f1']:.3f}",
        "per label: " + ", ".join(f"{label} {recall[label]:.0%} (n={support[label]})" for label in measured),
        "not measured (fewer sentences): "
        + ", ".join(f"{label} (n={support[label]})" for label in labels if label not in measured),
        f"abstain: rate {abstained.mean():.1%} of {len(sentences)} sentences; precision "
        f"{(~annotated[abstained]).mean():.1%} (abstained without an annotated opinion; {(~annotated).mean():.1%} "
        f"of all have none); recall {abstained[~annotated].mean():.1%} (of those without one); "
        f"single-topic sentences kept {kept.mean():.1%}, their topic right {right[kept].mean():.1%}",
        "",
        table(measured, labels, Counter(zip(scores["gold"], scores["predicted"], strict=True))),
    ]


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
    parser.add_argument(
        "--half", choices=("test", "dev"), default="test", help="the products measured (dev: where choices are made)"
    )
    args = parser.parse_args(argv)
    classifier = load_classifier(get_settings())
    if not isinstance(classifier, EmbeddingClassifier):
        raise SystemExit("the sentence analysis is the embedding backend's")
    measured = hu_liu.read(args.data, hu_liu.TEST_FILES if args.half == "test" else hu_liu.DEV_FILES)
    read = None  # the sentences the review's one pass reads: each sentence alone is also measured on them
    for pooled in (True, False):
        way = "pooled from the review's forward pass (shipped)" if pooled else "each sentence encoded on its own"
        pieces, covered = vectors(classifier, measured, pooled)
        read = covered if read is None else read
        print(
            f"\n## {way}\n\n{args.half} half: {covered.sum()} sentences read, "
            f"{len(measured) - covered.sum()} past the truncation"
        )
        subsets = {"": covered} if pooled else {"": covered, ", the sentences the one pass reads": read}
        for subset, rows in subsets.items():
            kept = [s for s, c in zip(measured, rows, strict=True) if c]
            print(f"\n### {len(kept)} sentences{subset}\n")
            print("\n".join(topic_report(classifier, kept, pieces[rows])))
            print()
            print("\n".join(sentiment_report(classifier, kept, pieces[rows])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
