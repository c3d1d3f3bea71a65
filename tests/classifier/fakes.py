"""Stand-ins for the model where a test is about what reaches it, not what it answers."""

from __future__ import annotations

import numpy as np


class FakeClassifier:
    labels = ["a", "b"]
    fingerprint = "fake-v1"

    def __init__(self):
        self.seen: list[str] = []

    def infer(self, texts):
        self.seen.extend(texts)
        return np.array([[0.25, 0.75, 0.5]] * len(texts), dtype=np.float32)
