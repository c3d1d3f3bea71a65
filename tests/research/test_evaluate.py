"""The ranking evaluation: leave one category out without leaking it, ties at random, intervals per product."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from research.relevance import evaluate
from research.relevance.evaluate import (
    LONGEST,
    NESTED,
    TEXT_ONLY,
    Folds,
    eligible,
    margin_interval,
    ndcg_at_k,
    per_product,
    summary,
)
from research.relevance.reviews import read_reviews

SMALL = ("Appliances_5.json.gz", "Gift_Cards_5.json.gz", "Magazine_Subscriptions_5.json.gz")


@pytest.fixture(scope="module")
def reviews(data_dir) -> pd.DataFrame:
    """Real reviews of three categories: every eligible product, at most eight per category."""
    df = read_reviews([data_dir / "amazon-2018" / name for name in SMALL])
    products = eligible(df, 10, 2).groupby("category")["product_id"].unique().map(lambda p: list(p[:8])).sum()
    return df[df["product_id"].isin(products)].reset_index(drop=True)


def test_each_category_is_measured_with_a_probe_and_constants_chosen_without_it(
    reviews, classifier, settings, monkeypatch
):
    calls: list[tuple[set[str], str]] = []  # (categories the probe is fitted on, category scored)
    usefulness = Folds.usefulness

    def recording(self, train, category):
        calls.append((set(self.categories[train]), category))
        return usefulness(self, train, category)

    monkeypatch.setattr(Folds, "usefulness", recording)
    results = Folds(reviews, classifier, settings, min_reviews=10, min_voted=2).leave_one_out()

    categories = sorted(reviews["category"].unique())
    assert len(categories) == 3 and len(calls) == 3 * 3  # per fold: the category left out, then each other one
    for i, left_out in enumerate(categories):
        others = set(categories) - {left_out}
        fold = calls[3 * i : 3 * i + 3]
        assert fold[0] == (others, left_out)
        assert all(left_out not in fitted and scored != left_out for fitted, scored in fold[1:])
        assert {scored for _, scored in fold[1:]} == others
        measured = results[results["category"] == left_out]
        assert len(measured) and measured["mix"].nunique() == 1
    assert results[[TEXT_ONLY, NESTED, LONGEST]].notna().all().all()


def test_ties_fall_at_random_not_in_the_files_order():
    # ten reviews of one length, the most voted first in the file: file order would look perfect
    votes = np.arange(10)[::-1]
    scored = pd.DataFrame(
        {
            "product_id": "P",
            "category": "C",
            "helpful_votes": votes,
            "word_count": 50,
            "relevance_text_only": 0.5,
            "relevance_score": 0.5,
            "rel_model": 0.5,
            "reviewed_at": pd.Timestamp("2020-01-01", tz="UTC"),
        }
    )
    assert per_product(scored)[LONGEST].iloc[0] < 0.95


def test_the_mean_of_categories_weighs_every_category_alike_and_its_interval_resamples_within_each():
    margins = pd.Series([0.0] * 100 + [1.0, 1.0])
    strata = pd.Series(["big"] * 100 + ["small"] * 2)
    assert margin_interval(margins, strata) == pytest.approx((0.5, 0.5))
    low, high = margin_interval(margins)
    assert low <= 2 / 102 <= high < 0.1


def test_the_summary_gives_each_category_then_both_means():
    rng = np.random.default_rng(1)
    results = pd.DataFrame({"product_id": [f"P{i}" for i in range(40)], "category": ["a"] * 30 + ["b"] * 10})
    for name in [*evaluate.RANKINGS, evaluate.RANDOM]:
        results[name] = rng.random(40)
    table = summary(results)
    assert list(table.index) == ["a", "b", "mean of categories", "mean of products"]
    assert table.loc["a", "products"] == 30 and table.loc["mean of products", "products"] == 40
    by_category = results.groupby("category")[[TEXT_ONLY, LONGEST]].mean().mean()
    assert table.loc["mean of categories", "margin"] == pytest.approx(by_category[TEXT_ONLY] - by_category[LONGEST])
    assert table.loc["mean of products", "margin"] == pytest.approx((results[TEXT_ONLY] - results[LONGEST]).mean())


@pytest.mark.parametrize("split", ["half", "categories"])
def test_the_command_prints_the_table_of_the_split_asked(split, reviews, classifier, monkeypatch, capsys, data_dir):
    monkeypatch.setattr(evaluate, "read_reviews", lambda paths: reviews)
    monkeypatch.setattr(evaluate, "load_classifier", lambda settings: classifier)
    assert evaluate.main([str(data_dir), "--split", split]) == 0
    out, err = capsys.readouterr()
    assert "| mean of categories |" in out and "| mean of products |" in out and "| Gift_Cards |" in out
    assert f"{'classifying' if split == 'half' else 'embedding'}: 100%" in err  # the model's progress
    if split == "half":
        assert "the evaluation half" in out and f"{TEXT_ONLY} − longest first [95% CI]" in out
    else:
        assert "leave one category out" in out and "| Appliances |" in out
        assert f"{NESTED} − longest first [95% CI]" in out and "constants each fold chose" in out


def test_ndcg_by_hand():
    gains = np.array([0.0, 1.0, 3.0])
    assert ndcg_at_k(np.array([0.1, 0.2, 0.3]), gains) == pytest.approx(1.0)
    worst = (0 + 1 / math.log2(3) + 3 / math.log2(4)) / (3 + 1 / math.log2(3))
    assert ndcg_at_k(np.array([0.3, 0.2, 0.1]), gains) == pytest.approx(worst)
    assert math.isnan(ndcg_at_k(np.array([1.0, 2.0]), np.zeros(2)))
