"""Fits the usefulness probe (services/classifier/probe.py) to real helpful votes.

    python -m research.relevance.fit_probe FILE_OR_FOLDER... [--out services/classifier/usefulness_probe.npz]

Zero-shot similarity to descriptions of "an informative review" barely ranks reviews better
than chance (docs/relevance.md). A ridge regression from the embedding to the review's log
helpful votes, centred within its product (a ranking is always within one product), reads the
same embedding far better. It is fitted only on the products of the *training half*, a fixed
split by a hash of the product id, so that the evaluation on the other half
(research/relevance/evaluate.py) measures products the probe never saw.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from research.relevance.reviews import read_reviews
from services.classifier.encoders import Encoder, load_encoder
from services.classifier.model import DEFAULT_LABELS
from services.classifier.probe import Probe
from services.classifier.scoring import review_spans
from shared.settings import get_settings

RIDGE = 1000.0  # strong: few thousand products, 384 dimensions; chosen on held-out products


def in_training_half(product_id: str) -> bool:
    """The fixed split: a product is in the probe's training half or in the evaluation half, for good."""
    return hashlib.sha1(product_id.encode()).digest()[0] % 2 == 0


def review_vectors(encoder: Encoder, df: pd.DataFrame) -> np.ndarray:
    """The reviews' vectors as the classify stage reads them: one pass over "title. text", its sentences
    read apart where the backend can (``Encoder.encode_spans``)."""
    return encoder.encode_spans(*review_spans(df))[0]


def fit(embeddings: np.ndarray, product_ids: pd.Series, helpful_votes: pd.Series, ridge: float = RIDGE) -> Probe:
    """Ridge regression of within-product-centred log votes on the (centred) embeddings."""
    target = np.log1p(helpful_votes.to_numpy(dtype=np.float64))
    target -= pd.Series(target).groupby(product_ids.to_numpy()).transform("mean").to_numpy()
    x = embeddings.astype(np.float64)
    xc = x - x.mean(axis=0)
    direction = np.linalg.solve(xc.T @ xc + ridge * np.eye(x.shape[1]), xc.T @ target)
    projection = x @ direction
    return Probe(direction.astype(np.float32), float(projection.mean()), float(projection.std() or 1.0))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m research.relevance.fit_probe",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("paths", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=DEFAULT_LABELS.with_name("usefulness_probe.npz"))
    args = parser.parse_args(argv)
    df = read_reviews(args.paths)
    df = df[df["product_id"].map(in_training_half)].reset_index(drop=True)
    encoder = load_encoder(get_settings())  # the configured backend: a probe reads that backend's embeddings
    embeddings = review_vectors(encoder, df)
    probe = fit(embeddings, df["product_id"], df["helpful_votes"])
    probe.save(args.out)
    print(
        f"fitted on {len(df)} reviews of {df['product_id'].nunique()} products (the training half); "
        f"wrote {args.out} ({probe.digest()})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
