"""Stand-ins for the model where a test is about what reaches it, not what it answers."""

from __future__ import annotations

import numpy as np


class FakeClassifier:
    """Every review: label "b" at 0.75; every sentence: a positive mention of ``sentence_topic``."""

    labels = ["a", "b"]
    fingerprint = "fake-v1"

    def __init__(self, sentence_topic: str | None = "b"):
        self.seen: list[str] = []
        self.spans: list[list[tuple[int, int]]] = []
        self.sentence_topic = sentence_topic

    def infer(self, texts):
        self.seen.extend(texts)
        return np.array([[0.25, 0.75, 0.5]] * len(texts), dtype=np.float32)

    def analyse(self, texts, spans):
        self.spans.extend(spans)
        mentions = [
            [{"start": a, "end": b, "topic": self.sentence_topic, "sentiment": 1, "confidence": 0.6} for a, b in s]
            for s in spans
        ]
        return self.infer(texts), [(m, [self.sentence_topic] if m and self.sentence_topic else []) for m in mentions]
