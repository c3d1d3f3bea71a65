from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import date, timedelta

import pytest

from shared.history import History, init_metadata_db
from shared.settings import Settings

_dates = (date(2000, 1, 1) + timedelta(days=i) for i in itertools.count())


@pytest.fixture(scope="session")
def history(servers: Settings) -> Iterator[History]:
    init_metadata_db(servers)
    h = History(servers.metadata_dsn, max_connections=16)
    yield h
    h.close()


@pytest.fixture
def logical_date() -> date:
    """A date no other test's run uses: one active run per date is the rule under test elsewhere."""
    return next(_dates)


@pytest.fixture(scope="session")
def pipeline(servers: Settings, loaded_source, history):
    """The session's servers plus every worker, beat, Flower and the API; clients for the test."""
    from ops.stack.manager import Stack
    from shared import clients

    Stack(servers).up()
    c = clients.init(servers)
    yield c
    clients.close()
