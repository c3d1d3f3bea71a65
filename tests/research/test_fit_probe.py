"""Fitting the usefulness probe: to votes within products, on a fixed split."""

from __future__ import annotations

import numpy as np
import pandas as pd

from research.relevance.fit_probe import fit, in_training_half
from services.classifier.probe import Probe


def test_the_split_is_fixed_and_about_half():
    products = [f"B{i:06d}" for i in range(2000)]
    training = [p for p in products if in_training_half(p)]
    # a hash of the id (not Python's hash(), salted per process): the same products in every run
    assert [p for p in products[:12] if p not in training] == ["B000001", "B000008", "B000011"]
    assert len(training) == 998
    assert 0.45 < len(training) / len(products) < 0.55


def test_fit_finds_the_direction_votes_follow_within_products(tmp_path):
    # given embeddings where one dimension drives votes inside each product, and another only
    # shifts whole products (which a ranking within a product must ignore)
    rng = np.random.default_rng(0)
    n, products = 4000, np.repeat(np.arange(100), 40).astype(str)
    x = rng.normal(size=(n, 8))
    product_effect = pd.Series(products).map(lambda p: int(p) % 7).to_numpy()
    x[:, 1] += product_effect
    votes = np.expm1(np.clip(1.5 * x[:, 0] + 0.8 * product_effect + rng.normal(scale=0.3, size=n), 0, None))
    probe = fit(x, pd.Series(products), pd.Series(votes), ridge=1.0)
    assert abs(probe.direction[0]) > 5 * abs(probe.direction[1:]).max()
    # stored and loaded, it scores the same
    probe.save(tmp_path / "p.npz")
    again = Probe.load(tmp_path / "p.npz")
    assert np.allclose(again.usefulness(x[:5]), probe.usefulness(x[:5]), atol=1e-5)
    assert 0 < probe.usefulness(x).min() and probe.usefulness(x).max() < 1
