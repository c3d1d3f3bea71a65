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
    assert all(not f.malformed and not f.rejected for f in loaded_source.files)
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


def test_rows_breaking_the_input_limits_are_rejected_with_a_reason_and_the_rest_loads(servers, loaded_source, tmp_path):
    good = {
        "reviewerID": "LIM1",
        "asin": "LIMPROD",
        "overall": 4.0,
        "reviewText": "ok",
        "summary": "s",
        "unixReviewTime": 1400000000,
        "verified": True,
    }
    reviews = tmp_path / "Limits_5.json"
    reviews.write_text(
        "\n".join(
            json.dumps(r)
            for r in [
                good,
                {**good, "reviewerID": "LIM\x00NUL"},
                {**good, "asin": "LIM\x00PROD"},
                {**good, "asin": "LIM\x1bPROD"},
                {**good, "reviewerID": "LIM\ud800"},
                {**good, "asin": "P" * 65},
                {**good, "reviewerID": "B" * 65},
                # free text keeps its whitespace and loses other control characters: the review loads
                {**good, "reviewerID": "LIM2", "reviewText": "fine\x00 \x03text\tand\nlines"},
                {**good, "reviewerID": "B" * 64, "asin": "P" * 64},
            ]
        )
        + "\n"
    )
    meta = tmp_path / "meta_Limits.json"
    product = {"asin": "LIMPROD", "title": "A limit", "category": ["Limits", "Edges"]}
    meta.write_text(
        "\n".join(
            json.dumps(p)
            for p in [
                product,
                {**product, "asin": "LIMNULCAT", "category": ["Limits", "Ed\x00ges"]},
                {**product, "asin": "LIMCTLCAT", "category": ["Lim\x07its", "Edges"]},
                {**product, "asin": "LIMLONGCAT", "category": ["Limits", "C" * 201]},
            ]
        )
        + "\n"
    )
    report = load_paths(servers, [reviews, meta], progress=False)
    by_name = {f.path.name: f for f in report.files}
    assert by_name["Limits_5.json"].rejected == [
        (2, "buyer id holds U+0000, a control character"),
        (3, "product id holds U+0000, a control character"),
        (4, "product id holds U+001B, a control character"),
        (5, "buyer id holds U+D800, an unpaired surrogate"),
        (6, "product id is 65 characters, over the limit of 64"),
        (7, "buyer id is 65 characters, over the limit of 64"),
    ]
    assert by_name["meta_Limits.json"].rejected == [
        (2, "category holds U+0000, a control character"),
        (3, "category holds U+0007, a control character"),
        (4, "category is 201 characters, over the limit of 200"),
    ]
    assert (by_name["Limits_5.json"].loaded, by_name["meta_Limits.json"].loaded) == (3, 1)
    assert not report.malformed and len(report.rejected) == 9
    dsn = servers.source_owner_dsn
    loaded = "SELECT buyer_id, product_id, text FROM review WHERE buyer_id LIKE 'LIM%%' OR buyer_id = %s ORDER BY 1"
    assert query(dsn, loaded, ("B" * 64,)) == [
        ("B" * 64, "P" * 64, "ok"),
        ("LIM1", "LIMPROD", "ok"),
        ("LIM2", "LIMPROD", "fine text\tand\nlines"),
    ]
    assert query(dsn, "SELECT product_id, category FROM product WHERE product_id LIKE 'LIM%'") == [("LIMPROD", "Edges")]


def test_the_cli_creates_loads_and_refuses_a_missing_path(servers, loaded_source, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("ops.source.cli.get_settings", lambda: servers)
    assert main(["source", "create"]) == 0
    assert main(["source", "load", "--quiet", str(tmp_path / "nowhere")]) == 2
    assert "nowhere does not exist" in capsys.readouterr().out
    bad = tmp_path / "Bad_5.json"
    good = {"reviewerID": "CLI1", "asin": "CLIP", "overall": 3, "reviewText": "x", "verified": False}
    bad.write_text(f"{json.dumps(good)}\nnope\n{json.dumps({**good, 'asin': 'P' * 76})}\n")
    assert main(["source", "load", "--quiet", str(bad)]) == 0
    out = capsys.readouterr().out
    assert f"malformed {bad}:2:" in out and "1 malformed lines skipped, each listed in" in out
    assert f"rejected {bad}:3: product id is 76 characters, over the limit of 64" in out
    report = Path(out.split("each listed in ")[1].split()[0])
    assert report.read_text().splitlines()[1:] == [
        f"{bad},2,malformed,neither JSON nor a Python literal (ValueError)",
        f'{bad},3,rejected,"product id is 76 characters, over the limit of 64"',
    ]


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
