"""How well the relevance score ranks reviews, measured against real helpful votes.

    python -m services.classifier.evaluate FILE_OR_FOLDER... [--min-reviews 10] [--min-voted 2]

For every product of the evaluation half (the products the usefulness probe was not fitted
on, services/classifier/probe.py) with at least ``min_reviews`` reviews of which at least
``min_voted`` have a helpful vote, each ranking's NDCG@5 is computed against the
graded relevance ``log2(1 + helpful votes)`` (a log, so one viral review does not
decide the product alone), then averaged over products. Reviews are read straight
from the public files, in any of the three formats.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from ops.source.formats import Malformed, detect, parse_line, to_review
from ops.source.loader import discover, read_lines
from services.classifier.model import Classifier, load_classifier
from services.classifier.probe import in_training_half
from services.classifier.scoring import model_outputs, relevance
from services.transformer.transform import clean_text
from shared.settings import Settings, get_settings

K = 5
RANDOM_SEEDS = 20


def read_reviews(paths: list[Path]) -> pd.DataFrame:
    rows = []
    for path in discover(paths):
        generation = None
        for _, line in read_lines(path, progress=False):
            try:
                record = parse_line(line)
                if generation is None:
                    kind, generation = detect(record, path.name)
                    if kind != "review":
                        break
                r = to_review(record, generation)
            except Malformed:
                continue
            rows.append({"product_id": r.product_id, "title": clean_text(r.title), "text": clean_text(r.text),
                         "helpful_votes": r.helpful_votes, "verified_purchase": r.verified_purchase,
                         "reviewed_at": r.reviewed_at, "review_key": r.review_key})  # fmt: skip
    df = pd.DataFrame(rows).drop_duplicates("review_key")
    return df[df["text"].str.len() > 0].reset_index(drop=True)


def eligible(df: pd.DataFrame, min_reviews: int, min_voted: int) -> pd.DataFrame:
    df = df[~df["product_id"].map(in_training_half)]
    stats = df.groupby("product_id")["helpful_votes"].agg(n="size", voted=lambda v: int((v > 0).sum()))
    keep = stats[(stats["n"] >= min_reviews) & (stats["voted"] >= min_voted)].index
    return df[df["product_id"].isin(keep)].reset_index(drop=True)


def ndcg_at_k(scores: np.ndarray, gains: np.ndarray, k: int = K) -> float:
    """NDCG@k of ranking by ``scores`` (descending; ties keep input order) against ``gains``."""
    order = np.argsort(-scores, kind="stable")[:k]
    discounts = 1 / np.log2(np.arange(2, 2 + min(k, len(scores))))
    ideal = float(np.sort(gains)[::-1][:k] @ discounts)
    return float(gains[order] @ discounts[: len(order)]) / ideal if ideal > 0 else math.nan


def score(df: pd.DataFrame, classifier: Classifier, settings: Settings) -> pd.DataFrame:
    """What the pipeline computes for these reviews: model outputs, then relevance as of the day
    after the newest review (the crawl's "now")."""
    df = df.assign(word_count=df["text"].str.split().str.len())
    scored = pd.concat([df, model_outputs(df, classifier)], axis=1)
    columns = ["word_count", "helpful_votes", "reviewed_at", "verified_purchase", "rel_model"]
    snapshot = (df["reviewed_at"].max() + pd.Timedelta(days=1)).to_pydatetime()
    with_relevance = relevance(pa.Table.from_pandas(scored[columns], preserve_index=False), settings, snapshot)
    extra = with_relevance.drop_columns(columns).to_pandas()
    return pd.concat([scored, extra.set_index(scored.index)], axis=1)


def evaluate(df: pd.DataFrame, classifier: Classifier, settings: Settings) -> dict[str, float]:
    scored = score(df, classifier, settings)
    rankings: dict[str, Callable[[pd.DataFrame], np.ndarray]] = {
        "relevance, text only (cold start)": lambda g: g["relevance_text_only"].to_numpy(),
        "relevance, full score (uses the votes)": lambda g: g["relevance_score"].to_numpy(),
        "model usefulness signal alone": lambda g: g["rel_model"].to_numpy(),
        "baseline: longest first": lambda g: g["word_count"].to_numpy(dtype=float),
        "baseline: newest first": lambda g: g["reviewed_at"].astype("int64").to_numpy(dtype=float),
    }
    results: dict[str, list[float]] = {name: [] for name in rankings}
    results["baseline: random (mean of 20 seeds)"] = []
    rng = np.random.default_rng(0)
    for _, group in scored.groupby("product_id"):
        gains = np.log2(1 + group["helpful_votes"].to_numpy(dtype=float))
        for name, rank in rankings.items():
            results[name].append(ndcg_at_k(rank(group), gains))
        randoms = [ndcg_at_k(rng.random(len(group)), gains) for _ in range(RANDOM_SEEDS)]
        results["baseline: random (mean of 20 seeds)"].append(float(np.mean(randoms)))
    return {name: float(np.nanmean(values)) for name, values in results.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.classifier.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("paths", nargs="+", type=Path)
    parser.add_argument("--min-reviews", type=int, default=10)
    parser.add_argument("--min-voted", type=int, default=2)
    args = parser.parse_args(argv)
    settings = get_settings()
    df = eligible(read_reviews(args.paths), args.min_reviews, args.min_voted)
    if df.empty:
        print("no product has enough reviews with helpful votes", file=sys.stderr)
        return 1
    results = evaluate(df, load_classifier(settings), settings)
    print(f"{df['product_id'].nunique()} products of the evaluation half, {len(df)} reviews; "
          f"NDCG@{K} against log2(1 + helpful votes)\n")  # fmt: skip
    print(f"| ranking | NDCG@{K} |\n|---|---|")
    for name, value in sorted(results.items(), key=lambda kv: -kv[1]):
        print(f"| {name} | {value:.4f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
