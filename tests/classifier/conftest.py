from __future__ import annotations

import pytest

from services.classifier.model import load_classifier
from shared.settings import Settings


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings(max_tokens=128)


@pytest.fixture(scope="session")
def classifier(settings):
    """The real all-MiniLM-L6-v2, loaded once for the session."""
    return load_classifier(settings)
