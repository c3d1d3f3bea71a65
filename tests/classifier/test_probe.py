"""The shipped usefulness probe: the labels use it, a broken one is refused."""

from __future__ import annotations

import pytest

from services.classifier.model import DEFAULT_LABELS, LabelConfig, ModelLoadError, load_classifier
from services.classifier.probe import Probe
from shared.settings import Settings


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
