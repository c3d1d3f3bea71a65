"""What the pipeline benchmark does to its own source database, as the owner role.

A catalogue larger than the shared data repeats its real rows: copy k of a review gets a new
review id (the identity column gives it), a new content key, and the k-th copy of its product and
of its buyer (``<id>#k``, with the original's metadata), so a large catalogue has as many products
as copies times the originals, each with the review count and texts of a real product.
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

COLUMNS = (
    "product_id",
    "buyer_id",
    "rating",
    "title",
    "text",
    "helpful_votes",
    "total_votes",
    "verified_purchase",
    "reviewed_at",
    "source_format",
    "source_file",
    "source_line",
)
INSERT = f"INSERT INTO review (review_key, {', '.join(COLUMNS)})"


def _copied(**overrides: str) -> str:
    """The select list of a copy of review ``r``, with the expressions given for some columns."""
    return ", ".join(overrides.get(column, f"r.{column}") for column in COLUMNS)


COPY_PRODUCTS = """
INSERT INTO product (product_id, title, brand, category, categories, price, has_metadata, source_format)
SELECT p.product_id || '#' || k, p.title, p.brand, p.category, p.categories, p.price, p.has_metadata, p.source_format
FROM product p CROSS JOIN generate_series(1, %(copies)s) k
"""
COPY_BUYERS = """
INSERT INTO buyer (buyer_id, name)
SELECT b.buyer_id || '#' || k, b.name FROM buyer b CROSS JOIN generate_series(1, %(copies)s) k
"""
COPY_REVIEWS = f"""{INSERT}
SELECT r.review_key || '#copy' || k, {_copied(product_id="r.product_id || '#' || k", buyer_id="r.buyer_id || '#' || k")}
FROM review r CROSS JOIN generate_series(1, %(copies)s) k
WHERE r.review_id <= %(last_id)s
ORDER BY k, r.review_id
"""

# New reviews: real rows of the catalogue under new ids, their text tagged so the model has not
# read them; they join their original's product.
ADD_NEW = f"""{INSERT}
SELECT r.review_key || '#' || %(tag)s, {_copied(text="r.text || ' (' || %(tag)s || ')'")}
FROM review r
ORDER BY md5(r.review_key || %(tag)s)
LIMIT %(rows)s
"""

# Edits: a reviewer rewrites a review (its text tagged) and it gathers a vote; the source's trigger
# moves updated_at, which is how the next run finds them.
EDIT = """
UPDATE review SET text = text || ' (' || %(tag)s || ')', helpful_votes = helpful_votes + 1
WHERE review_id IN (SELECT review_id FROM review ORDER BY md5(review_key || %(tag)s) LIMIT %(rows)s)
"""
# Votes: shoppers find a review helpful; its text stays as it was.
VOTE = """
UPDATE review SET helpful_votes = helpful_votes + 1
WHERE review_id IN (SELECT review_id FROM review ORDER BY md5(review_key || %(tag)s) LIMIT %(rows)s)
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


def ids(settings: Settings) -> list[int]:
    with _owner(settings) as cur:
        cur.execute("SELECT review_id FROM review")
        return [row[0] for row in cur.fetchall()]


def keep_first(settings: Settings, reviews: int) -> int:
    """Drop every review after the first ``reviews`` (a smaller benchmark); returns the last id kept."""
    with _owner(settings) as cur:
        cur.execute(
            "DELETE FROM review WHERE review_id > (SELECT max(review_id) FROM "
            "(SELECT review_id FROM review ORDER BY review_id LIMIT %s) first)",
            (reviews,),
        )
        cur.execute("SELECT max(review_id) FROM review")
        return cur.fetchone()[0]


def repeat(settings: Settings, last_id: int, copies: int) -> int:
    """Add ``copies`` copies of every review up to ``last_id``, each copy with products and buyers of its
    own; returns the rows added. Once per source: copies are numbered from 1."""
    with _owner(settings) as cur:
        cur.execute(COPY_PRODUCTS, {"copies": copies})
        cur.execute(COPY_BUYERS, {"copies": copies})
        cur.execute(COPY_REVIEWS, {"copies": copies, "last_id": last_id})
        return cur.rowcount


def grow_to(settings: Settings, reviews: int) -> None:
    """Copy the source's reviews until it holds at least ``reviews``, then cut it to that many."""
    originals = count(settings)
    copies = -(-reviews // originals) - 1
    if copies > 0:
        repeat(settings, keep_first(settings, originals), copies)
    keep_first(settings, reviews)


@dataclass(frozen=True)
class Delta:
    new: int
    edited: int
    voted: int


def change(settings: Settings, rows: int, tag: str) -> Delta:
    """A day of the shop: ``rows`` changed reviews, a third each new, edited, and with new votes only."""
    with _owner(settings) as cur:
        cur.execute(ADD_NEW, {"rows": rows - 2 * (rows // 3), "tag": tag})
        new = cur.rowcount
        cur.execute(EDIT, {"rows": rows // 3, "tag": f"edit {tag}"})
        edited = cur.rowcount
        cur.execute(VOTE, {"rows": rows // 3, "tag": f"vote {tag}"})
        return Delta(new, edited, cur.rowcount)
