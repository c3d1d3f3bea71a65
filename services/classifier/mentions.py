"""What a review says, sentence by sentence: each sentence's topic (or none) and its sentiment.

A mention is one sentence of the review's ``text`` (services/classifier/sentences.py) with its vector pooled
from the review's own forward pass (``Encoder.encode_spans``). Its topic is read by ``TopicHead``, two linear
read-outs of that vector fitted on the same authors' annotated review sentences, with the labels' descriptions
as examples of the labels those lack (research/topics/fit_topics.py): whether the sentence speaks of a topic at
all, or abstains ("I bought it last week."), and if it does, which label. Its sentiment is a linear read-out
of the same vector and of the sentence's words' lexicon scores (services/classifier/lexicon.py),
``SentimentProbe``, fitted on human-labelled review sentences with weak labels from star ratings
(research/topics/fit_sentiment.py; docs/relevance.md says why and how well it does). A review's topics are its
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


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class TopicHead:
    """A sentence's topic: a multinomial logistic regression over the labels, and a binary one, "speaks of a
    topic" against "says nothing about one", whose threshold (chosen on the development products) is folded
    into its bias: a sentence speaks of a topic when its score is at least 0."""

    labels: tuple[str, ...]  # the labels the head was fitted for, in its rows' order
    weights: np.ndarray  # (labels, dim)
    bias: np.ndarray  # (labels,)
    speaks: np.ndarray  # (dim,)
    speaks_bias: float

    def probabilities(self, vectors: np.ndarray) -> np.ndarray:
        """(n, labels) probability of each label for each (normalised) sentence vector."""
        return _softmax(vectors @ self.weights.T + self.bias)

    def speaks_of_a_topic(self, vectors: np.ndarray) -> np.ndarray:
        return vectors @ self.speaks + self.speaks_bias >= 0

    def save(self, path: Path) -> None:
        np.savez(
            path,
            labels=np.array(self.labels),
            weights=self.weights.astype(np.float32),
            bias=self.bias.astype(np.float32),
            speaks=self.speaks.astype(np.float32),
            speaks_bias=np.float32(self.speaks_bias),
        )

    @classmethod
    def load(cls, path: Path) -> TopicHead:
        with np.load(path) as data:
            return cls(
                tuple(str(label) for label in data["labels"]),
                data["weights"].astype(np.float32),
                data["bias"].astype(np.float32),
                data["speaks"].astype(np.float32),
                float(data["speaks_bias"]),
            )

    def digest(self) -> str:
        parts = (self.weights, self.bias, self.speaks, np.float32(self.speaks_bias))
        return hashlib.sha1("|".join(self.labels).encode() + b"".join(p.tobytes() for p in parts)).hexdigest()[:12]


@dataclass(frozen=True)
class SentenceReading:
    """Per sentence: its topic's index in the labels (-1: abstained), that label's probability, its sentiment."""

    topic: np.ndarray
    confidence: np.ndarray
    sentiment: np.ndarray


def read_sentences(vectors: np.ndarray, head: TopicHead, probe: SentimentProbe, texts: list[str]) -> SentenceReading:
    """The sentences' topics from their ``vectors``, their sentiment from those and their ``texts``."""
    probs = head.probabilities(vectors)
    topic = np.where(head.speaks_of_a_topic(vectors), probs.argmax(axis=1), -1)
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
