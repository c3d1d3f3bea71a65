"""Extract: read the source through the read-only role in keyset-paginated batches.

A run reads the reviews changed after its watermark (every review in a full run), in
(updated_at, review_id) order. All batches of a run come from one REPEATABLE READ snapshot, so a
review written while the run extracts cannot appear in two batches or shift the pages; the same
snapshot gives an incremental run the ids of every review still in the source, which is how it
learns of deletions. A retry after a lost connection resumes after the last batch it recorded.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import psycopg2
import pyarrow as pa

from shared.lake import Lake, live_ids_key, raw_key
from shared.plan import BEGINNING, Watermark
from shared.pseudonym import without_erased_buyers
from shared.schemas import RAW

# (updated_at, review_id) is indexed (review_updated_at): the row comparison walks that index and
# costs the same on the last page as on the first (OFFSET would not), whatever the catalogue's size.
SELECT_PAGE = """
SELECT r.review_id, r.product_id, r.buyer_id, r.rating, r.title, r.text, r.helpful_votes,
       r.total_votes, r.verified_purchase, r.reviewed_at,
       p.title AS product_title, p.brand AS product_brand, p.category AS product_category,
       p.product_id IS NOT NULL AS product_known, r.updated_at
FROM review r LEFT JOIN product p ON p.product_id = r.product_id
WHERE (r.updated_at, r.review_id) > (%s, %s)
ORDER BY r.updated_at, r.review_id
LIMIT %s
"""

# The first statement of the transaction, so it dates the snapshot every page is read from.
SNAPSHOT = "SELECT transaction_timestamp()"

LIVE_IDS = "COPY (SELECT review_id FROM review ORDER BY review_id) TO STDOUT (FORMAT binary)"
# PostgreSQL's binary COPY: a 19-byte header, then per row a field count, a length and the
# big-endian bigint, then a 2-byte trailer. Read as one numpy array: no Python object per id.
_COPY_HEADER, _COPY_TRAILER = 19, 2
_COPY_ROW = np.dtype([("fields", ">i2"), ("length", ">i4"), ("value", ">i8")])


@dataclass(frozen=True)
class ExtractedBatch:
    batch: int
    key: str
    rows: int  # written: those read less the reviews of buyers who asked to be forgotten
    last: Watermark
    read: int


def connect_source(dsn: str):
    conn = psycopg2.connect(dsn, connect_timeout=10, application_name="reviews-extractor")
    conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
    return conn


def watermark_cap(conn, lag_s: float) -> datetime:
    """Open the run's snapshot and return the newest change time the next run may read after.

    A row's updated_at is its writer's transaction start, not its commit: a writer open while the
    snapshot is taken commits later a row stamped earlier than rows this run reads. PostgreSQL's
    snapshot cannot name every such writer (one whose xid is at or past the snapshot's xmax is not
    listed), so the next run always reads again the last ``lag_s`` seconds before the snapshot.
    """
    with conn.cursor() as cur:
        cur.execute(SNAPSHOT)
        (taken_at,) = cur.fetchone()
    return taken_at - timedelta(seconds=lag_s)


def next_watermark(since: Watermark, last: Watermark | None, cap: datetime) -> Watermark:
    """Where the next run reads after: the last row read, held back to ``cap`` (those rows are
    read again, which is harmless: every stage rewrites a review by its id)."""
    end = last or since
    if end.updated_at > cap:
        return Watermark(cap, 0)
    return end


def read_pages(conn, batch_size: int, after: Watermark = BEGINNING, limit: int | None = None) -> Iterator[pa.Table]:
    """Yield the source's reviews changed after ``after`` as Arrow tables of ``batch_size`` rows."""
    names = RAW.names
    remaining = limit
    with conn.cursor() as cur:
        while remaining is None or remaining > 0:
            size = batch_size if remaining is None else min(batch_size, remaining)
            cur.execute(SELECT_PAGE, (after.updated_at, after.review_id, size))
            rows = cur.fetchall()
            if not rows:
                return
            columns = list(zip(*rows, strict=True))
            yield pa.table({n: pa.array(col, type=RAW.field(n).type) for n, col in zip(names, columns, strict=True)})
            after = Watermark(rows[-1][-1], rows[-1][0])
            if remaining is not None:
                remaining -= len(rows)


def extract(
    conn,
    lake: Lake,
    run_id: str,
    batch_size: int,
    *,
    first_batch: int = 1,
    after: Watermark = BEGINNING,
    limit: int | None = None,
    erased: frozenset[str] = frozenset(),
    pseudonym_key: bytes = b"",
) -> Iterator[ExtractedBatch]:
    """Write each page to ``raw/`` and yield it once it is durable. The reviews of buyers who asked to be
    forgotten (``erased``, by pseudonym) are never written: no zone and no archive of this run holds them."""
    for number, page in enumerate(read_pages(conn, batch_size, after, limit), start=first_batch):
        last = Watermark(page.column("updated_at")[-1].as_py(), page.column("review_id")[-1].as_py())
        table = without_erased_buyers(page, erased, pseudonym_key)
        key = raw_key(run_id, number)
        lake.put_table(key, table)
        yield ExtractedBatch(number, key, table.num_rows, last, page.num_rows)


def live_ids(conn) -> np.ndarray:
    """Every review id in the source, ascending, from the run's snapshot (8 bytes a review)."""
    buffer = io.BytesIO()
    with conn.cursor() as cur:
        cur.copy_expert(LIVE_IDS, buffer)
    rows = np.frombuffer(buffer.getbuffer()[_COPY_HEADER:-_COPY_TRAILER], dtype=_COPY_ROW)
    return rows["value"].astype(np.int64)


def write_live_ids(conn, lake: Lake, run_id: str) -> int:
    ids = live_ids(conn)
    lake.put_table(live_ids_key(run_id), pa.table({"review_id": ids}))
    return len(ids)
