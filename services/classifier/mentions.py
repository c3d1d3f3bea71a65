"""What a review says, sentence by sentence: each sentence's topic (or none) and its sentiment.

A mention is one sentence of the review's ``text`` (services/classifier/sentences.py) with its vector pooled
from the review's own forward pass (``Encoder.encode_spans``). Its topic is the label whose descriptions it
most resembles, unless even that similarity is below ``abstain_below`` (labels.yaml): then the sentence is
about none of them ("I bought it last week."). Its sentiment is a linear read-out of the same vector and of the
sentence's words' lexicon scores (services/classifier/lexicon.py), ``SentimentProbe``, fitted on human-labelled
review sentences with weak labels from star ratings (research/topics/fit_sentiment.py; docs/relevance.md says
why and how well it does). A review's topics are its
mentions' distinct topics, most-discussed first.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from services.classifier.lexicon import lexicon_scores

SENTIMENTS = np.array([-1, 0, 1], dtype=np.int8)  # the probe's classes, in its rows' order


@dataclass(frozen=True)
class SentimentProbe:
    weights: np.ndarray  # (3, dim): negative, neutral, positive
    lexicon: np.ndarray  # (3, len(lexicon.FEATURES)): the same rows' weights of the sentence's lexicon scores
    bias: np.ndarray  # (3,)

    def scores(self, vectors: np.ndarray, texts: list[str]) -> np.ndarray:
        """(n, 3) logits of negative, neutral, positive for each (normalised) sentence vector and its text."""
        return vectors @ self.weights.T + lexicon_scores(texts) @ self.lexicon.T + self.bias

    def sentiment(self, vectors: np.ndarray, texts: list[str]) -> np.ndarray:
        """-1, 0 or 1 for each (normalised) sentence vector and its text."""
        return SENTIMENTS[self.scores(vectors, texts).argmax(axis=1)]

    def save(self, path: Path) -> None:
        np.savez(path, **{k: getattr(self, k).astype(np.float32) for k in ("weights", "lexicon", "bias")})

    @classmethod
    def load(cls, path: Path) -> SentimentProbe:
        with np.load(path) as data:
            return cls(*(data[k].astype(np.float32) for k in ("weights", "lexicon", "bias")))

    def digest(self) -> str:
        return hashlib.sha1(self.weights.tobytes() + self.lexicon.tobytes() + self.bias.tobytes()).hexdigest()[:12]


@dataclass(frozen=True)
class SentenceReading:
    """Per sentence: its topic's index in the labels (-1: abstained), that label's probability, its sentiment."""

    topic: np.ndarray
    confidence: np.ndarray
    sentiment: np.ndarray


def read_sentences(
    vectors: np.ndarray,
    label_vectors: np.ndarray,
    temperature: float,
    abstain_below: float,
    probe: SentimentProbe,
    texts: list[str],
) -> SentenceReading:
    """The sentences' topics from their ``vectors``, their sentiment from those and their ``texts``."""
    similarity = vectors @ label_vectors.T
    z = similarity / temperature
    probs = np.exp(z - z.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    top = similarity.argmax(axis=1)
    topic = np.where(similarity.max(axis=1) >= abstain_below, top, -1)
    return SentenceReading(topic, probs.max(axis=1).astype(np.float32), probe.sentiment(vectors, texts))


def review_mentions(
    spans: list[tuple[int, int]], reading: SentenceReading, offset: int, labels: list[str]
) -> tuple[list[dict], list[str]]:
    """One review's mentions (``reading`` holds its sentences, in order) and its topics, most-discussed first
    (ties: the larger summed confidence, then the labels' order)."""
    mentions = [
        {
            "start": start,
            "end": end,
            "topic": labels[t] if t >= 0 else None,
            "sentiment": int(s),
            "confidence": float(c),
        }
        for (start, end), t, s, c in zip(
            spans, reading.topic[offset:], reading.sentiment[offset:], reading.confidence[offset:], strict=False
        )
    ]
    count, weight = Counter(), Counter()
    for m in mentions:
        if m["topic"] is not None:
            count[m["topic"]] += 1
            weight[m["topic"]] += m["confidence"]
    topics = sorted(count, key=lambda t: (-count[t], -weight[t], labels.index(t)))
    return mentions, topics
