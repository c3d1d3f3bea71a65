"""Extraction through the read-only role: keyset pages, one snapshot, limits, resuming."""

from __future__ import annotations

import psycopg2
import pytest

from services.extractor.extract import connect_source, extract, read_pages
from shared.lake import raw_key
from shared.schemas import RAW


@pytest.fixture
def source(servers, loaded_source):
    conn = connect_source(servers.source_reader_dsn)
    yield conn
    conn.close()


def all_ids(servers) -> list[int]:
    with psycopg2.connect(servers.source_owner_dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT review_id FROM review ORDER BY review_id")
        return [r[0] for r in cur.fetchall()]


def test_pages_cover_every_review_once_in_order(servers, source):
    pages = list(read_pages(source, batch_size=5000))
    ids = [i for page in pages for i in page.column("review_id").to_pylist()]
    assert ids == all_ids(servers)
    assert all(page.schema == RAW for page in pages)
    assert [page.num_rows for page in pages[:-1]] == [5000] * (len(pages) - 1)


def test_limit_and_resume_after_a_cursor(servers, source):
    everything = all_ids(servers)
    first = [i for p in read_pages(source, 40, limit=100) for i in p.column("review_id").to_pylist()]
    assert first == everything[:100]
    rest = [i for p in read_pages(source, 40, after_id=first[-1], limit=30) for i in p.column("review_id").to_pylist()]
    assert rest == everything[100:130]


def test_the_extract_connection_cannot_write(source):
    with pytest.raises(psycopg2.errors.ReadOnlySqlTransaction), source.cursor() as cur:
        cur.execute("DELETE FROM review")
    source.rollback()


def test_each_batch_is_durable_in_the_lake_before_it_is_yielded(servers, source, lake):
    for batch in extract(source, lake, "extract-test-run", 50, limit=120):
        assert batch.key == raw_key("extract-test-run", batch.batch)
        stored = lake.get_table(batch.key, RAW)
        assert stored.num_rows == batch.rows and stored.column("review_id")[-1].as_py() == batch.last_review_id
    assert batch.batch == 3 and batch.rows == 20
