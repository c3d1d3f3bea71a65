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

from services.classifier import sentences
from services.classifier.model import Classifier
from shared import known as known_reviews


def review_text(title: str | None, text: str | None) -> str:
    """What the model reads: the title carries the reviewer's own summary (missing: None or NaN)."""
    text = text if isinstance(text, str) else ""
    return f"{title}. {text}" if isinstance(title, str) and title else text


def review_texts(reviews: pd.DataFrame) -> list[str]:
    """What the model reads of each review of a frame with title and text columns."""
    return [review_text(t, x) for t, x in zip(reviews["title"], reviews["text"], strict=True)]


def review_spans(reviews: pd.DataFrame) -> tuple[list[str], list[list[tuple[int, int]]]]:
    """What the model reads of each review, and the sentences of its ``text`` as spans of what it reads
    (the title before the text is read for context, but is no sentence of the review's)."""
    texts, spans = review_texts(reviews), []
    for read, body in zip(texts, reviews["text"], strict=True):
        body = body if isinstance(body, str) else ""
        shift = len(read) - len(body)
        spans.append([(start + shift, end + shift) for start, end in sentences.split(body)])
    return texts, spans


def content_hash(text: str, fingerprint: str) -> str:
    return hashlib.sha1(f"{fingerprint}\x1f{text}".encode()).hexdigest()


def model_outputs(
    cleaned: pd.DataFrame, classifier: Classifier, known: np.ndarray = known_reviews.NONE
) -> pd.DataFrame:
    """The classifier's outputs for a cleaned batch (the MODEL_FIELDS). A text repeated in the batch
    reaches the model once; a review whose product and text the run's base version holds (``known``,
    sorted keys: shared/known.py) not at all: its outputs stay null, and publish carries them over."""
    texts, spans = review_spans(cleaned)
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
    # Reviews to read, each distinct text once: the same text with another title/text cut splits differently.
    to_read = [i for i, c in enumerate(carried) if not c]
    shift = [len(t) - len(b) if isinstance(b, str) else len(t) for t, b in zip(texts, cleaned["text"], strict=True)]
    position: dict[tuple[str, int], int] = {}
    unique: list[int] = []
    for i in to_read:
        if (texts[i], shift[i]) not in position:
            position[(texts[i], shift[i])] = len(unique)
            unique.append(i)
    inferred, analyses = classifier.analyse([texts[i] for i in unique], [spans[i] for i in unique])
    n_labels = len(classifier.labels)
    outputs = np.full((len(texts), n_labels + 1), np.nan, dtype=np.float32)
    mentions: list[list[dict] | None] = [None] * len(texts)
    topics: list[list[str] | None] = [None] * len(texts)
    for i in to_read:
        k = position[(texts[i], shift[i])]
        outputs[i] = inferred[k]
        # Offsets in the review's text field: what the storefront shows.
        mentions[i] = [{**m, "start": m["start"] - shift[i], "end": m["end"] - shift[i]} for m in analyses[k][0]]
        topics[i] = analyses[k][1]
    probs, usefulness = outputs[:, :n_labels], outputs[:, n_labels]
    # The review's one topic: its most-discussed; the whole review's most similar label when no sentence has one.
    top = [classifier.labels.index(t[0]) if t else int(row.argmax()) for t, row in zip(topics, probs, strict=True)]
    return pd.DataFrame(
        {
            "category": [None if c else classifier.labels[i] for i, c in zip(top, carried, strict=True)],
            "category_confidence": probs[np.arange(len(top)), top] if len(top) else np.zeros(0, np.float32),
            "label_scores": [
                None if c else json.dumps(dict(zip(classifier.labels, np.round(row, 4).tolist(), strict=True)))
                for row, c in zip(probs, carried, strict=True)
            ],
            "rel_model": usefulness,
            "mentions": mentions,
            "topics": topics,
            "content_hash": hashes,
            "model_fingerprint": classifier.fingerprint,
        },
        index=cleaned.index,
    )
