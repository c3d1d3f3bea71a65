"""The source database and the loader, on the real PostgreSQL with the real shared data."""

from __future__ import annotations

import gzip
import json
from decimal import Decimal
from pathlib import Path

import psycopg2
import pytest

from ops.cli import main
from ops.source.formats import Malformed, parse_line, to_product, to_review
from ops.source.loader import load_paths
from ops.source.schema import create_source

# The data README: the published 2018 5-core files hold 16,069 lines, 12,817 unique reviews.
UNIQUE_2018_REVIEWS = 12_817


def query(dsn: str, sql: str, params: tuple = ()) -> list[tuple]:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(sql, params or None)
        return cur.fetchall()


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO buyer (buyer_id) VALUES ('intruder')",
        "UPDATE review SET rating = 1",
        "DELETE FROM review",
        "TRUNCATE review",
        "CREATE TABLE intruder (id int)",
        "ALTER TABLE review ADD COLUMN intruder int",
        "DROP TABLE review",
    ],
)
def test_the_pipeline_role_cannot_write(servers, loaded_source, statement):
    conn = psycopg2.connect(servers.source_reader_dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM review")
            assert cur.fetchone()[0] > 0  # it can read
        conn.rollback()
        for prelude in ("", "SET TRANSACTION READ WRITE; "):  # read-only by default, and by grant
            with pytest.raises((psycopg2.errors.ReadOnlySqlTransaction, psycopg2.errors.InsufficientPrivilege)):
                with conn.cursor() as cur:
                    cur.execute(prelude + statement)
            conn.rollback()
    finally:
        conn.close()


def test_create_is_idempotent(servers, loaded_source):
    before = query(servers.source_owner_dsn, "SELECT count(*) FROM review")
    create_source(servers)
    assert query(servers.source_owner_dsn, "SELECT count(*) FROM review") == before


def test_the_shared_data_loads_with_every_quirk(servers, loaded_source):
    by_name = {f.path.name: f for f in loaded_source.files}
    assert by_name["meta_Digital_Music.json.gz"].generation == "2014"  # Python-literal metadata
    assert by_name["meta_Digital_Music.json.gz"].loaded == 7419
    assert all(not f.malformed for f in loaded_source.files)
    dsn = servers.source_owner_dsn
    # exact duplicates of the 2018 5-core files load once
    assert query(dsn, "SELECT count(*) FROM review WHERE source_format = '2018'") == [(UNIQUE_2018_REVIEWS,)]
    assert by_name["Appliances_5.json.gz"].loaded == 205
    # cell phones have no metadata file: stub products keep the foreign keys whole
    cell_phones = """SELECT count(DISTINCT p.product_id), bool_or(p.has_metadata) FROM review r
                     JOIN product p USING (product_id) WHERE r.source_file LIKE '%Cell_Phones%'"""
    assert query(dsn, cell_phones) == [(325, False)]
    # votes written "1,234" parse; 2014 keeps the total votes, 2018 the verified flag
    assert query(dsn, "SELECT max(helpful_votes) FROM review WHERE source_format = '2018'")[0][0] >= 1000
    assert query(dsn, "SELECT count(*) FROM review WHERE source_format = '2014' AND total_votes IS NULL") == [(0,)]
    unknown_verified = "SELECT count(*) FROM review WHERE source_format = '2018' AND verified_purchase IS NULL"
    assert query(dsn, unknown_verified) == [(0,)]
    # missing text is kept (the pipeline rejects it with a reason), not dropped here
    assert query(dsn, "SELECT count(*) FROM review WHERE text IS NULL")[0][0] > 0


def test_loading_twice_inserts_nothing(servers, loaded_source, data_dir):
    before = query(servers.source_owner_dsn, "SELECT count(*), max(review_id) FROM review")
    again = load_paths(servers, [data_dir / "amazon-2018"], progress=False)
    assert again.reviews_loaded == 0
    assert query(servers.source_owner_dsn, "SELECT count(*), max(review_id) FROM review") == before


def test_the_2023_format(servers, loaded_source, tmp_path: Path):
    reviews = tmp_path / "Toys_2023.jsonl"
    reviews.write_text(
        "\n".join(
            json.dumps(r)
            for r in [
                {
                    "rating": 4.0,
                    "title": "Fun",
                    "text": "Kids love it &amp; so do I",
                    "images": [],
                    "asin": "C1",
                    "parent_asin": "P2023",
                    "user_id": "U2023A",
                    "timestamp": 1588615855070,
                    "helpful_vote": 7,
                    "verified_purchase": True,
                },
                {
                    "rating": 2.0,
                    "title": "Meh",
                    "text": "Broke fast",
                    "images": [],
                    "asin": "C2",
                    "parent_asin": "P2023",
                    "user_id": "U2023B",
                    "timestamp": 1600000000000,
                    "helpful_vote": 0,
                    "verified_purchase": False,
                },
            ]
        )
        + "\n"
    )
    meta = tmp_path / "meta_Toys_2023.jsonl.gz"
    with gzip.open(meta, "wt") as out:
        out.write(
            json.dumps(
                {
                    "parent_asin": "P2023",
                    "title": "Toy",
                    "main_category": "Toys & Games",
                    "average_rating": 3.0,
                    "rating_number": 2,
                    "price": 19.99,
                    "store": "ToyCo",
                    "categories": ["Toys", "Games"],
                    "details": {},
                }
            )
            + "\n"
        )
    report = load_paths(servers, [reviews, meta], progress=False)
    assert [(f.kind, f.generation) for f in report.files] == [("meta", "2023"), ("review", "2023")]
    rows = query(
        servers.source_owner_dsn,
        """
        SELECT r.buyer_id, r.rating, r.helpful_votes, r.total_votes, r.verified_purchase, r.reviewed_at,
               p.title, p.brand, p.category, p.price, p.has_metadata
        FROM review r JOIN product p USING (product_id) WHERE r.product_id = 'P2023' ORDER BY r.review_id""",
    )
    assert rows[0][:5] == ("U2023A", 4, 7, None, True)
    assert rows[0][5].isoformat() == "2020-05-04T18:10:55.070000+00:00"
    assert rows[0][6:] == ("Toy", "ToyCo", "Toys & Games", Decimal("19.99"), True)


def test_malformed_lines_are_reported_with_file_and_line_and_the_rest_loads(servers, loaded_source, tmp_path):
    good = {
        "reviewerID": "MAL1",
        "asin": "MALPROD",
        "overall": 5.0,
        "reviewText": "ok",
        "summary": "s",
        "unixReviewTime": 1400000000,
        "verified": True,
    }
    path = tmp_path / "Broken_5.json"
    path.write_text(
        "\n".join(
            [
                json.dumps(good),
                "{not json",
                "[1, 2, 3]",
                json.dumps({**good, "asin": ""}),
                json.dumps({**good, "overall": "five"}),
                json.dumps({**good, "reviewerID": "MAL2"}),
            ]
        )
        + "\n"
    )
    report = load_paths(servers, [path], progress=False)
    (file,) = report.files
    assert [line for line, _ in file.malformed] == [2, 3, 4, 5]
    assert "not a number" in dict(file.malformed)[5] and "asin" in dict(file.malformed)[4]
    assert file.loaded == 2


def test_the_cli_creates_loads_and_refuses_a_missing_path(servers, loaded_source, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("ops.source.cli.get_settings", lambda: servers)
    assert main(["source", "create"]) == 0
    assert main(["source", "load", "--quiet", str(tmp_path / "nowhere")]) == 2
    assert "nowhere does not exist" in capsys.readouterr().out
    bad = tmp_path / "Bad_5.json"
    bad.write_text('{"reviewerID": "CLI1", "asin": "CLIP", "overall": 3, "reviewText": "x", "verified": false}\nnope\n')
    assert main(["source", "load", "--quiet", str(bad)]) == 0
    out = capsys.readouterr().out
    assert f"malformed {bad}:2:" in out and "malformed lines skipped, each listed in" in out


@pytest.mark.parametrize(
    ("line", "reason"),
    [("", "neither JSON"), ("null", "must be an object"), ('{"reviewerID": "A", "helpful": [1]}', "missing asin")],
)
def test_parse_errors_say_why(line, reason):
    with pytest.raises(Malformed, match=reason):
        record = parse_line(line)
        to_review(record, "2014")


def test_prices_and_categories_of_each_generation():
    assert to_product({"asin": "A", "price": "$1,025.50 - $2,000.00", "category": ["X", "Y"]}, "2018").price == 1025.5
    assert to_product({"asin": "A", "price": ""}, "2018").price is None
    assert to_product({"asin": "A", "price": 3.5, "categories": [["CDs", "Pop"]]}, "2014").category == "Pop"
