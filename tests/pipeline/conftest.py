from __future__ import annotations

import itertools
from datetime import date, timedelta

import pytest

_dates = (date(2000, 1, 1) + timedelta(days=i) for i in itertools.count())


@pytest.fixture
def logical_date() -> date:
    """A date no other test's run uses: one active run per date is the rule under test elsewhere."""
    return next(_dates)
