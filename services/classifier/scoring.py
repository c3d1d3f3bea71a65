"""What classify computes of a review, once per text: the model's outputs.

They depend only on the text and the classifier, so a later run carries them forward; the relevance
score built on them, which depends on the day and on settings, is publish's (shared/relevance.py).
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pyarrow as pa

from services.classifier.model import Classifier
from shared import known as known_reviews


def review_text(title: str | None, text: str | None) -> str:
    """What the model reads: the title carries the reviewer's own summary (missing: None or NaN)."""
    text = text if isinstance(text, str) else ""
    return f"{title}. {text}" if isinstance(title, str) and title else text


def review_texts(reviews: pd.DataFrame) -> list[str]:
    """What the model reads of each review of a frame with title and text columns."""
    return [review_text(t, x) for t, x in zip(reviews["title"], reviews["text"], strict=True)]


def content_hash(text: str, fingerprint: str) -> str:
    return hashlib.sha1(f"{fingerprint}\x1f{text}".encode()).hexdigest()


def model_outputs(
    cleaned: pd.DataFrame, classifier: Classifier, known: np.ndarray = known_reviews.NONE
) -> pd.DataFrame:
    """The classifier's outputs for a cleaned batch (the MODEL_FIELDS). A text repeated in the batch
    reaches the model once; a review whose product and text the run's base version holds (``known``,
    sorted keys: shared/known.py) not at all: its outputs stay null, and publish carries them over."""
    texts = review_texts(cleaned)
    hashes = [content_hash(t, classifier.fingerprint) for t in texts]
    carried = np.zeros(len(texts), dtype=bool)
    if len(known) and texts:
        rows = pa.table(
            {
                "review_id": cleaned["review_id"].to_numpy(np.int64),
                "product_id": cleaned["product_id"],
                "content_hash": hashes,
            }
        )
        carried = known_reviews.member(known_reviews.keys(rows), known)
    to_read = [t for t, c in zip(texts, carried, strict=True) if not c]
    unique = list(dict.fromkeys(to_read))
    inferred = classifier.infer(unique)
    position = {text: i for i, text in enumerate(unique)}
    n_labels = len(classifier.labels)
    outputs = np.full((len(texts), n_labels + 1), np.nan, dtype=np.float32)
    if to_read:
        outputs[~carried] = inferred[[position[t] for t in to_read]]
    probs, usefulness = outputs[:, :n_labels], outputs[:, n_labels]
    top = probs.argmax(axis=1) if len(probs) else np.array([], dtype=int)
    return pd.DataFrame(
        {
            "category": [None if c else classifier.labels[i] for i, c in zip(top, carried, strict=True)],
            "category_confidence": probs.max(axis=1) if len(probs) else np.zeros(0, np.float32),
            "label_scores": [
                None if c else json.dumps(dict(zip(classifier.labels, np.round(row, 4).tolist(), strict=True)))
                for row, c in zip(probs, carried, strict=True)
            ],
            "rel_model": usefulness,
            "content_hash": hashes,
            "model_fingerprint": classifier.fingerprint,
        },
        index=cleaned.index,
    )
