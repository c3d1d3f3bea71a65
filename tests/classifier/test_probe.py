"""The usefulness probe: fitted to votes within products, a fixed split, stored and loaded, refused when broken."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from services.classifier.model import DEFAULT_LABELS, LabelConfig, ModelLoadError, load_classifier
from services.classifier.probe import Probe, fit, in_training_half
from shared.settings import Settings


def test_the_split_is_fixed_and_about_half():
    products = [f"B{i:06d}" for i in range(2000)]
    training = [p for p in products if in_training_half(p)]
    assert training == [p for p in products if in_training_half(p)]
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


def test_the_shipped_labels_use_the_shipped_probe():
    config = LabelConfig.load(None)
    assert config.probe == DEFAULT_LABELS.with_name("usefulness_probe.npz") and config.probe.is_file()
    assert Probe.load(config.probe).direction.shape == (384,)  # all-MiniLM-L6-v2's embedding size


def test_a_broken_probe_fails_the_load_with_a_clear_message(tmp_path):
    (tmp_path / "probe.npz").write_bytes(b"not a probe")
    labels = tmp_path / "labels.yaml"
    labels.write_text(DEFAULT_LABELS.read_text().replace("probe: usefulness_probe.npz", "probe: probe.npz"))
    with pytest.raises(ModelLoadError, match="usefulness probe .*probe.npz"):
        load_classifier(Settings(labels_file=labels))
