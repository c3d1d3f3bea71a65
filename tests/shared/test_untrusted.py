"""The limits of ids and categories, free text's stripped characters, formula-safe CSV cells."""

from __future__ import annotations

import pytest

from shared.untrusted import CATEGORY, MAX_ID_CHARS, PRODUCT_ID, csv_cell, free_text, shown


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("B000TEST", None),
        ("A" * MAX_ID_CHARS, None),
        ("A" * (MAX_ID_CHARS + 1), "product id is 65 characters, over the limit of 64"),
        ("B0\x00", "product id holds U+0000, a control character"),
        ("B0\tX", "product id holds U+0009, a control character"),
        ("B0\x85", "product id holds U+0085, a control character"),
        ("B0\ud800", "product id holds U+D800, an unpaired surrogate"),
    ],
)
def test_an_id_is_held_to_its_limits(value, problem):
    assert PRODUCT_ID.problem(value) == problem


def test_a_category_may_be_longer_than_an_id():
    assert CATEGORY.problem("C" * 200) is None
    assert CATEGORY.problem("C" * 201) == "category is 201 characters, over the limit of 200"


def test_free_text_keeps_ordinary_whitespace_and_strips_other_control_characters():
    assert free_text("a\tb\nc\r\nd\x00e\x03f\x1ag\x7fh\x9bi\ud800j é") == "a\tb\nc\r\ndefghij é"


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_a_cell_that_a_spreadsheet_would_run_is_quoted(start):
    assert csv_cell(start + "HYPERLINK()") == "'" + start + "HYPERLINK()"


@pytest.mark.parametrize("value", ["Great sound", "", " =not first", "5 stars"])
def test_other_cells_are_unchanged(value):
    assert csv_cell(value) == value


@pytest.mark.parametrize(
    ("value", "as_shown"),
    [
        ("B000TEST", "B000TEST"),
        ("B0\\X", "B0\\X"),  # a backslash alone is an ordinary character
        ("B0\x00", "B0\\x00"),
        ("B0\tX\n", "B0\\x09X\\x0a"),
        ("B0\x85\ud800", "B0\\x85\\ud800"),
        ("B0\\x00\x00", "B0\\\\x00\\x00"),  # with a control character, backslashes doubled: no forged escape
    ],
)
def test_an_id_is_shown_with_its_control_characters_escaped(value, as_shown):
    assert shown(value) == as_shown
