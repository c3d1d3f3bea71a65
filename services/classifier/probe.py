"""The usefulness probe: a linear read-out of the review embedding, fitted to real helpful votes
(research/relevance/fit_probe.py fits it; docs/relevance.md says why and how well it ranks).

What is stored is a direction and a scale (the model's own weights stay as published), and it
applies to the embedding model it was fitted with.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Probe:
    direction: np.ndarray  # (dim,)
    center: float
    scale: float

    def usefulness(self, embeddings: np.ndarray) -> np.ndarray:
        """In (0, 1): a logistic of the standardised projection."""
        return 1 / (1 + np.exp(-(embeddings @ self.direction - self.center) / self.scale))

    def save(self, path: Path) -> None:
        np.savez(path, direction=self.direction.astype(np.float32), center=self.center, scale=self.scale)

    @classmethod
    def load(cls, path: Path) -> Probe:
        with np.load(path) as data:
            return cls(data["direction"].astype(np.float32), float(data["center"]), float(data["scale"]))

    def digest(self) -> str:
        return hashlib.sha1(self.direction.tobytes() + f"{self.center}|{self.scale}".encode()).hexdigest()[:12]
