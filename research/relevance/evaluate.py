"""How well the relevance score ranks reviews, measured against real helpful votes.

    python -m research.relevance.evaluate FILE_OR_FOLDER... [--split half|categories]
                                          [--min-reviews 10] [--min-voted 2]

Each ranking's NDCG@5 is computed per product against the graded relevance
``log2(1 + helpful votes)`` (a log, so one viral review does not decide the product alone), for
every product with at least ``min_reviews`` reviews of which at least ``min_voted`` have a
helpful vote. Two splits keep the text-only score from being measured on what it was fitted to:

half        the products of the evaluation half (those the shipped usefulness probe was not
            fitted on, research/relevance/fit_probe.py), scored by the classifier as shipped
categories  leave one category out: for each category (one public file is one category), the
            probe is refitted on every other category and the products of the one left out are
            scored with it; reported per category, as the mean of categories and of products.
            The text-only score is given twice: with the shipped constants (chosen on data that
            holds every category, so it flatters), and with its two constants (the usefulness
            signal's share and SUBSTANCE_WORDS) chosen inside the fold, on the other categories
            only (each scored by a probe fitted without it): nothing chosen on the test side

Beside the baselines (longest, newest, oldest first, random), every table gives the text-only
score's margin over longest first with a 95 % bootstrap interval over products (resampled within
each category for the mean of categories). Reviews are read straight from the public files, in
any of the three formats.
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
from tqdm import tqdm

from research.relevance.fit_probe import fit, in_training_half, review_vectors
from research.relevance.reviews import read_reviews
from services.classifier.model import Classifier, EmbeddingClassifier, load_classifier
from services.classifier.scoring import review_spans, review_texts
from shared.relevance import relevance
from shared.settings import Settings, get_settings

K = 5
RANDOM_SEEDS = 20
BOOTSTRAP = 2000
CHUNK = 2000  # reviews read by the model between two updates of the progress bar
TEXT_ONLY = "relevance, text only (cold start)"
NESTED = "relevance, text only, constants chosen in the fold"
LONGEST = "baseline: longest first"
RANKINGS: dict[str, Callable[[pd.DataFrame], np.ndarray]] = {
    TEXT_ONLY: lambda g: g["relevance_text_only"].to_numpy(),
    "relevance, full score (uses the votes)": lambda g: g["relevance_score"].to_numpy(),
    "model usefulness signal alone": lambda g: g["rel_model"].to_numpy(),
    LONGEST: lambda g: g["word_count"].to_numpy(dtype=float),
    "baseline: newest first": lambda g: g["reviewed_at"].astype("int64").to_numpy(dtype=float),
    "baseline: oldest first": lambda g: -g["reviewed_at"].astype("int64").to_numpy(dtype=float),
}
RANDOM = f"baseline: random (mean of {RANDOM_SEEDS} seeds)"
# What a fold may choose for the text-only score: (the usefulness signal's share, SUBSTANCE_WORDS).
MIXES = [(share, words) for share in (0.2, 0.3, 0.375, 0.45, 0.55, 0.7) for words in (75.0, 150.0, 300.0)]


def eligible(df: pd.DataFrame, min_reviews: int, min_voted: int) -> pd.DataFrame:
    """The reviews of products with enough reviews, and enough of them voted, to rank against votes."""
    stats = df.groupby("product_id")["helpful_votes"].agg(n="size", voted=lambda v: int((v > 0).sum()))
    keep = stats[(stats["n"] >= min_reviews) & (stats["voted"] >= min_voted)].index
    return df[df["product_id"].isin(keep)].reset_index(drop=True)


def ndcg_at_k(scores: np.ndarray, gains: np.ndarray, k: int = K) -> float:
    """NDCG@k of ranking by ``scores`` (descending; ties keep input order) against ``gains``."""
    order = np.argsort(-scores, kind="stable")[:k]
    discounts = 1 / np.log2(np.arange(2, 2 + min(k, len(scores))))
    ideal = float(np.sort(gains)[::-1][:k] @ discounts)
    return float(gains[order] @ discounts[: len(order)]) / ideal if ideal > 0 else math.nan


def in_chunks(function: Callable[[pd.DataFrame], np.ndarray], df: pd.DataFrame, desc: str) -> np.ndarray:
    """``function(df)`` a chunk of rows at a time, with a progress bar on stderr: minutes on a CPU."""
    parts = []
    with tqdm(total=len(df), unit="review", desc=desc, file=sys.stderr) as bar:
        for start in range(0, len(df), CHUNK):
            parts.append(function(df.iloc[start : start + CHUNK]))
            bar.update(len(parts[-1]))
    return np.concatenate(parts) if parts else function(df)


def score(df: pd.DataFrame, rel_model: np.ndarray, settings: Settings) -> pd.DataFrame:
    """What publish computes for these reviews from the model's usefulness signal: relevance as of
    the day after the newest review (the crawl's "now")."""
    df = df.assign(word_count=df["text"].str.split().str.len(), rel_model=rel_model)
    columns = ["word_count", "helpful_votes", "reviewed_at", "verified_purchase", "rel_model"]
    snapshot = (df["reviewed_at"].max() + pd.Timedelta(days=1)).to_pydatetime()
    with_relevance = relevance(pa.Table.from_pandas(df[columns], preserve_index=False), settings, snapshot)
    extra = with_relevance.drop_columns(columns).to_pandas()
    return pd.concat([df, extra.set_index(df.index)], axis=1)


def with_mix(settings: Settings, mix: tuple[float, float]) -> Settings:
    """``settings`` whose text-only score gives the usefulness signal ``share`` and length the rest."""
    share, words = mix
    total = settings.weight_model + settings.weight_substance
    return settings.model_copy(
        update={"weight_model": share * total, "weight_substance": (1 - share) * total, "substance_words": words}
    )


def per_product(
    scored: pd.DataFrame, rankings: dict[str, Callable[[pd.DataFrame], np.ndarray]] = RANKINGS, random: bool = True
) -> pd.DataFrame:
    """Each ranking's NDCG@K, one row per product (with its category). A product's reviews are
    shuffled first, so that ties (same length, same day) fall at random, not in the file's order."""
    rng = np.random.default_rng(0)
    rows = []
    for product_id, group in scored.groupby("product_id"):
        group = group.iloc[rng.permutation(len(group))]
        gains = np.log2(1 + group["helpful_votes"].to_numpy(dtype=float))
        row = {"product_id": product_id, "category": group["category"].iloc[0]}
        row.update({name: ndcg_at_k(rank(group), gains) for name, rank in rankings.items()})
        if random:
            row[RANDOM] = float(np.mean([ndcg_at_k(rng.random(len(group)), gains) for _ in range(RANDOM_SEEDS)]))
        rows.append(row)
    return pd.DataFrame(rows)


def margin_interval(margins: pd.Series, strata: pd.Series | None = None, seed: int = 0) -> tuple[float, float]:
    """95 % bootstrap interval over products of the mean margin; with ``strata`` (the products'
    categories), of the mean over strata of each stratum's mean, resampling within each."""
    rng = np.random.default_rng(seed)
    groups = [margins.to_numpy()] if strata is None else [g.to_numpy() for _, g in margins.groupby(strata.to_numpy())]
    draws = np.mean([np.mean(g[rng.integers(0, len(g), size=(BOOTSTRAP, len(g)))], axis=1) for g in groups], axis=0)
    low, high = np.percentile(draws, [2.5, 97.5])
    return float(low), float(high)


def evaluate_half(df: pd.DataFrame, classifier: Classifier, settings: Settings) -> pd.DataFrame:
    """NDCG per product of the evaluation half, scored by the classifier as shipped."""
    df = df[~df["product_id"].map(in_training_half)].reset_index(drop=True)
    outputs = in_chunks(lambda rows: classifier.analyse(*review_spans(rows))[0], df, "classifying")  # as classify
    return per_product(score(df, outputs[:, -1], settings))


class Folds:
    """All reviews read, embedded once; a fold fits the probe on some categories and scores others."""

    def __init__(
        self, df: pd.DataFrame, classifier: EmbeddingClassifier, settings: Settings, min_reviews: int, min_voted: int
    ):
        self.df, self.classifier, self.settings = df, classifier, settings
        self.min_reviews, self.min_voted = min_reviews, min_voted
        self.texts = review_texts(df)
        self.vectors = in_chunks(lambda rows: review_vectors(classifier.encoder, rows), df, "embedding")
        self.categories = df["category"].to_numpy()

    def usefulness(self, train: np.ndarray, category: str) -> tuple[pd.DataFrame, np.ndarray]:
        """The reviews of the eligible products of ``category`` and their usefulness signal, read by
        a probe fitted on the rows ``train``."""
        held_out = self.categories == category
        measured = eligible(self.df[held_out], self.min_reviews, self.min_voted)["product_id"].unique()
        rows = np.flatnonzero(held_out & self.df["product_id"].isin(measured).to_numpy())
        probe = fit(self.vectors[train], self.df["product_id"][train], self.df["helpful_votes"][train])
        outputs = self.classifier.with_probe(probe).outputs([self.texts[i] for i in rows], self.vectors[rows])
        return self.df.iloc[rows].reset_index(drop=True), outputs[:, -1]

    def chosen_mix(self, training: list[str]) -> tuple[float, float]:
        """The mix with the best mean NDCG over the products of the ``training`` categories, each
        category scored by a probe fitted on the other training categories."""
        totals = np.zeros(len(MIXES))
        text_only = {"text only": lambda g: g["relevance_text_only"].to_numpy()}
        for category in training:
            reviews, rel_model = self.usefulness(
                np.isin(self.categories, [c for c in training if c != category]), category
            )
            for i, mix in enumerate(MIXES):
                scored = score(reviews, rel_model, with_mix(self.settings, mix))
                totals[i] += np.nansum(per_product(scored, text_only, random=False)["text only"])
        return MIXES[int(np.argmax(totals))]

    def leave_one_out(self) -> pd.DataFrame:
        """NDCG per product of every category, scored with a probe, and a mix, chosen without it."""
        results = []
        names = sorted(set(self.categories))
        for category in names:
            training = [c for c in names if c != category]
            reviews, rel_model = self.usefulness(np.isin(self.categories, training), category)
            if reviews.empty:
                continue
            mix = self.chosen_mix(training)
            scored = score(reviews, rel_model, self.settings)
            scored["nested"] = score(reviews, rel_model, with_mix(self.settings, mix))["relevance_text_only"].to_numpy()
            rankings = {TEXT_ONLY: RANKINGS[TEXT_ONLY], NESTED: lambda g: g["nested"].to_numpy(), **RANKINGS}
            result = per_product(scored, rankings)
            results.append(result.assign(mix=f"{mix[0]:g} / {mix[1]:g} words"))
        return pd.concat(results, ignore_index=True) if results else pd.DataFrame()


def summary(results: pd.DataFrame) -> pd.DataFrame:
    """Per category, then the mean of categories and the mean of products: each ranking's NDCG@K,
    the products, and the headline text-only score's margin over longest first with its interval
    (the score with constants chosen in the fold where there is one)."""
    names = rankings_of(results)
    margins = results[headline(results)] - results[LONGEST]
    rows = {}
    for category, group in results.groupby("category"):
        interval = margin_interval(margins[group.index])
        rows[category] = {"products": len(group), **group[names].mean(), "interval": interval}
    categories = pd.DataFrame(rows).T
    rows["mean of categories"] = {
        "products": len(results),
        **categories[names].astype(float).mean(),
        "interval": margin_interval(margins, results["category"]),
    }
    rows["mean of products"] = {"products": len(results), **results[names].mean(), "interval": margin_interval(margins)}
    table = pd.DataFrame(rows).T
    table["margin"] = table[headline(results)].astype(float) - table[LONGEST].astype(float)
    return table


def rankings_of(results: pd.DataFrame) -> list[str]:
    return [c for c in results.columns if c not in ("product_id", "category", "mix")]


def headline(results: pd.DataFrame) -> str:
    return NESTED if NESTED in results else TEXT_ONLY


def markdown(table: pd.DataFrame) -> str:
    names = [c for c in table.columns if c not in ("products", "interval", "margin")]
    head = ["", "products", *names, f"{headline(table)} − longest first [95% CI]"]
    lines = ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
    for label, row in table.iterrows():
        low, high = row["interval"]
        cells = [
            str(label),
            str(int(row["products"])),
            *(f"{float(row[n]):.4f}" for n in names),
            f"{row['margin']:+.3f} [{low:+.3f}, {high:+.3f}]",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m research.relevance.evaluate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("paths", nargs="+", type=Path)
    parser.add_argument("--split", choices=("half", "categories"), default="half")
    parser.add_argument("--min-reviews", type=int, default=10)
    parser.add_argument("--min-voted", type=int, default=2)
    args = parser.parse_args(argv)
    settings = get_settings()
    classifier = load_classifier(settings)
    if args.split == "categories" and not isinstance(classifier, EmbeddingClassifier):
        print(
            "--split categories refits the embedding classifier's usefulness probe; CLASSIFIER_BACKEND=nli has none",
            file=sys.stderr,
        )
        return 2
    reviews = read_reviews(args.paths)
    if args.split == "half":
        results = evaluate_half(eligible(reviews, args.min_reviews, args.min_voted), classifier, settings)
    else:
        results = Folds(reviews, classifier, settings, args.min_reviews, args.min_voted).leave_one_out()
    if results.empty:
        print("no product has enough reviews with helpful votes", file=sys.stderr)
        return 1
    split = (
        "the evaluation half (products the shipped probe never saw)"
        if args.split == "half"
        else "leave one category out (probe refitted without the category measured)"
    )
    print(f"{len(results)} products, {split}; NDCG@{K} against log2(1 + helpful votes)\n")
    print(markdown(summary(results)))
    if "mix" in results:
        chosen = results.groupby("category")["mix"].first()
        print(
            "\nconstants each fold chose (usefulness share / SUBSTANCE_WORDS): "
            + "; ".join(f"{c} {m}" for c, m in chosen.items())
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
