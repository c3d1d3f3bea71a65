"""Extraction through the read-only role: keyset pages, one snapshot, limits, resuming."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg2
import pytest

from services.extractor.extract import (
    connect_source,
    extract,
    live_ids,
    next_watermark,
    read_pages,
    watermark_cap,
)
from shared.lake import raw_key
from shared.plan import BEGINNING, Watermark
from shared.pseudonym import pseudonym
from shared.schemas import RAW


@pytest.fixture
def source(servers, loaded_source):
    conn = connect_source(servers.source_reader_dsn)
    yield conn
    conn.close()


def all_ids(servers) -> list[int]:
    """Every review id, in the order of change (updated_at, then id) that runs read in."""
    with psycopg2.connect(servers.source_owner_dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT review_id FROM review ORDER BY updated_at, review_id")
        return [r[0] for r in cur.fetchall()]


def test_pages_cover_every_review_once_in_change_order(servers, source):
    pages = list(read_pages(source, batch_size=5000))
    ids = [i for page in pages for i in page.column("review_id").to_pylist()]
    assert ids == all_ids(servers)
    assert all(page.schema == RAW for page in pages)
    assert [page.num_rows for page in pages[:-1]] == [5000] * (len(pages) - 1)


def test_limit_and_resume_after_a_cursor(servers, source):
    everything = all_ids(servers)
    first = [i for p in read_pages(source, 40, limit=100) for i in p.column("review_id").to_pylist()]
    assert first == everything[:100]
    last = next(p for p in reversed(list(read_pages(source, 40, limit=100))))
    after = Watermark(last.column("updated_at")[-1].as_py(), last.column("review_id")[-1].as_py())
    rest = [i for p in read_pages(source, 40, after=after, limit=30) for i in p.column("review_id").to_pylist()]
    assert rest == everything[100:130]


def test_the_extract_connection_cannot_write(source):
    with pytest.raises(psycopg2.errors.ReadOnlySqlTransaction), source.cursor() as cur:
        cur.execute("DELETE FROM review")
    source.rollback()


def test_each_batch_is_durable_in_the_lake_before_it_is_yielded(servers, source, lake):
    for batch in extract(source, lake, "extract-test-run", 50, limit=120):
        assert batch.key == raw_key("extract-test-run", batch.batch)
        stored = lake.get_table(batch.key, RAW)
        assert stored.num_rows == batch.rows and stored.column("review_id")[-1].as_py() == batch.last.review_id
        assert stored.column("updated_at")[-1].as_py() == batch.last.updated_at
    assert batch.batch == 3 and batch.rows == 20


def test_live_ids_are_every_review_of_the_snapshot(servers, source):
    assert live_ids(source).tolist() == sorted(all_ids(servers))
    source.rollback()


def test_the_watermark_is_the_last_row_read_held_back_to_the_cap():
    t = datetime(2026, 1, 1, tzinfo=UTC)
    last = Watermark(t, 42)
    assert next_watermark(BEGINNING, last, cap=t) == last
    assert next_watermark(last, None, cap=t) == last  # nothing changed: it stays
    held = next_watermark(BEGINNING, last, cap=t - timedelta(seconds=60))
    assert held == Watermark(t - timedelta(seconds=60), 0)  # the last minute is read again next time


def test_a_change_committed_after_the_snapshot_but_stamped_before_it_is_read_by_the_next_run(servers, source):
    # given a source writer whose transaction is open while a run takes its snapshot
    writer = psycopg2.connect(servers.source_owner_dsn)
    try:
        with writer.cursor() as cur:  # the trigger stamps updated_at with the writer's transaction start
            cur.execute(
                "UPDATE review SET helpful_votes = helpful_votes + 1000 WHERE review_id = "
                "(SELECT min(review_id) FROM review) RETURNING review_id, helpful_votes"
            )
            edited, votes = cur.fetchone()
        # when the run reads everything its snapshot holds, then the writer commits
        cap = watermark_cap(source, lag_s=60)
        pages = list(read_pages(source, batch_size=100_000))
        last = pages[-1]
        watermark = next_watermark(
            BEGINNING, Watermark(last.column("updated_at")[-1].as_py(), last.column("review_id")[-1].as_py()), cap
        )
        source.rollback()
        writer.commit()
        # then the run saw the old row, and the next run, reading after the watermark, sees the edit
        seen = {r["review_id"]: r["helpful_votes"] for p in pages for r in p.to_pylist()}
        assert seen[edited] == votes - 1000
        again = {
            r["review_id"]: r["helpful_votes"]
            for p in read_pages(source, 100_000, after=watermark)
            for r in p.to_pylist()
        }
        source.rollback()
        assert again[edited] == votes
    finally:
        with writer.cursor() as cur:
            cur.execute("UPDATE review SET helpful_votes = helpful_votes - 1000 WHERE review_id = %s", (edited,))
        writer.commit()
        writer.close()


def test_the_reviews_of_a_forgotten_buyer_are_never_written_and_the_pages_still_advance(servers, source, lake):
    # given the buyer of the first page's first review asked to be forgotten
    key = b"extract-test-key"
    first = next(read_pages(source, batch_size=50))
    buyer = first.column("buyer_id")[0].as_py()
    theirs = sum(1 for b in first.column("buyer_id").to_pylist() if b == buyer)
    # when the run extracts that page
    batch = next(
        extract(source, lake, "extract-erased-run", 50, erased=frozenset({pseudonym(buyer, key)}), pseudonym_key=key)
    )
    # then raw/ holds the page less their reviews, and the next page starts after the whole page read
    written = lake.get_table(batch.key)
    assert buyer not in written.column("buyer_id").to_pylist()
    assert (batch.read, batch.rows) == (50, 50 - theirs) and written.num_rows == 50 - theirs
    assert batch.last == Watermark(first.column("updated_at")[-1].as_py(), first.column("review_id")[-1].as_py())
