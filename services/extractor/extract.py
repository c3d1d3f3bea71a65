"""Extract: read the source through the read-only role in keyset-paginated batches.

All batches of a run come from one REPEATABLE READ snapshot, so a review written
while the run extracts cannot appear in two batches or shift the pages. A retry
after a lost connection resumes after the last batch it recorded.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import psycopg2
import pyarrow as pa

from shared.lake import Lake, raw_key
from shared.schemas import RAW

# review_id is the primary key: "WHERE review_id > last ORDER BY review_id" walks the
# index and costs the same on the last page as on the first (OFFSET would not).
SELECT_PAGE = """
SELECT r.review_id, r.product_id, r.buyer_id, r.rating, r.title, r.text, r.helpful_votes,
       r.total_votes, r.verified_purchase, r.reviewed_at,
       p.title AS product_title, p.brand AS product_brand, p.category AS product_category,
       p.product_id IS NOT NULL AS product_known
FROM review r LEFT JOIN product p ON p.product_id = r.product_id
WHERE r.review_id > %s
ORDER BY r.review_id
LIMIT %s
"""


@dataclass(frozen=True)
class ExtractedBatch:
    batch: int
    key: str
    rows: int
    last_review_id: int


def connect_source(dsn: str):
    conn = psycopg2.connect(dsn, connect_timeout=10, application_name="reviews-extractor")
    conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
    return conn


def read_pages(conn, batch_size: int, after_id: int = 0, limit: int | None = None) -> Iterator[pa.Table]:
    """Yield the source's reviews after ``after_id`` as Arrow tables of ``batch_size`` rows."""
    names = RAW.names
    remaining = limit
    with conn.cursor() as cur:
        while remaining is None or remaining > 0:
            size = batch_size if remaining is None else min(batch_size, remaining)
            cur.execute(SELECT_PAGE, (after_id, size))
            rows = cur.fetchall()
            if not rows:
                return
            columns = list(zip(*rows, strict=True))
            yield pa.table({n: pa.array(col, type=RAW.field(n).type) for n, col in zip(names, columns, strict=True)})
            after_id = rows[-1][0]
            if remaining is not None:
                remaining -= len(rows)


def extract(
    conn, lake: Lake, run_id: str, batch_size: int, *, first_batch: int = 1, after_id: int = 0,
    limit: int | None = None,
) -> Iterator[ExtractedBatch]:  # fmt: skip
    """Write each page to ``raw/`` and yield it once it is durable."""
    for number, table in enumerate(read_pages(conn, batch_size, after_id, limit), start=first_batch):
        key = raw_key(run_id, number)
        lake.put_table(key, table)
        yield ExtractedBatch(number, key, table.num_rows, table.column("review_id")[-1].as_py())
