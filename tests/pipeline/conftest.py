from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import date, timedelta

import psycopg2
import pytest

from shared.settings import Settings

_dates = (date(2000, 1, 1) + timedelta(days=i) for i in itertools.count())


@pytest.fixture
def logical_date(servers: Settings, history) -> Iterator[date]:
    """A date no other test's run uses: one active run per date is the rule under test elsewhere.

    The runs a test makes by hand for that date are ended with it: left queued or running, the
    sweep (beat's, or a test's) would take them for stalled real runs and extract the whole source.
    """
    day = next(_dates)
    yield day
    conn = psycopg2.connect(servers.metadata_dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(
                "UPDATE run SET status = 'failed', finished_at = now(), error = 'made by a test, ended with it' "
                "WHERE logical_date = %s AND status IN ('queued', 'running')",
                (day,),
            )
    finally:
        conn.close()
