"""What the pipeline benchmark does to its own source database, as the owner role.

Synthetic rows are real rows repeated under new review ids (the identity column gives them) and
new content keys; product and buyer ids are kept, so every row still joins its product.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg2

from ops.source.loader import load_paths
from shared.settings import Settings

COLUMNS = ("product_id", "buyer_id", "rating", "title", "text", "helpful_votes", "total_votes",
           "verified_purchase", "reviewed_at", "source_format", "source_file", "source_line")
INSERT = f"INSERT INTO review (review_key, {', '.join(COLUMNS)})"


def _copied(text: str) -> str:
    """The select list of a copy of review ``r``, with ``text`` as its text."""
    return ", ".join(text if column == "text" else f"r.{column}" for column in COLUMNS)


# Copy k of review r gets the content key "<key>#copy<k>": unique, while the text is untouched,
# so the classifier's score cache (keyed by text) recognises the copy.
REPEAT = f"""{INSERT}
SELECT r.review_key || '#copy' || k, {_copied("r.text")}
FROM review r CROSS JOIN generate_series(1, %(copies)s) k
WHERE r.review_id <= %(last_id)s
ORDER BY k, r.review_id
"""

# New reviews: real rows with their text changed, so no score is cached for them yet.
ADD_NEW = f"""{INSERT}
SELECT r.review_key || '#' || %(tag)s, {_copied("r.text || ' (' || %(tag)s || ')'")}
FROM review r WHERE r.review_id <= %(last_id)s
ORDER BY md5(r.review_key || %(tag)s)
LIMIT %(rows)s
"""


@contextmanager
def _owner(settings: Settings) -> Iterator:
    conn = psycopg2.connect(settings.source_owner_dsn, application_name="reviews-bench")
    try:
        with conn, conn.cursor() as cur:
            yield cur
    finally:
        conn.close()


@dataclass(frozen=True)
class TimedLoad:
    reviews: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.reviews / self.seconds


def empty(settings: Settings) -> None:
    with _owner(settings) as cur:
        cur.execute("TRUNCATE review, product, buyer RESTART IDENTITY")


def timed_load(settings: Settings, paths: list[Path]) -> TimedLoad:
    """Empty the source, then load ``paths`` into it (products and reviews), timed."""
    empty(settings)
    started = time.perf_counter()
    report = load_paths(settings, paths, progress=False)
    return TimedLoad(report.reviews_loaded, time.perf_counter() - started)


def count(settings: Settings) -> int:
    with _owner(settings) as cur:
        cur.execute("SELECT count(*) FROM review")
        return cur.fetchone()[0]


def keep_first(settings: Settings, reviews: int) -> int:
    """Drop every review after the first ``reviews`` (a smaller benchmark); returns the last id kept."""
    with _owner(settings) as cur:
        cur.execute("DELETE FROM review WHERE review_id > (SELECT max(review_id) FROM "
                    "(SELECT review_id FROM review ORDER BY review_id LIMIT %s) first)", (reviews,))  # fmt: skip
        cur.execute("SELECT max(review_id) FROM review")
        return cur.fetchone()[0]


def repeat(settings: Settings, last_id: int, copies: int) -> int:
    """Add ``copies`` copies of every review up to ``last_id``; returns the rows added."""
    with _owner(settings) as cur:
        cur.execute(REPEAT, {"copies": copies, "last_id": last_id})
        return cur.rowcount


def add_new(settings: Settings, last_id: int, rows: int, tag: str) -> int:
    """Add ``rows`` new reviews with texts never seen before; returns the rows added."""
    with _owner(settings) as cur:
        cur.execute(ADD_NEW, {"rows": rows, "last_id": last_id, "tag": tag})
        return cur.rowcount
