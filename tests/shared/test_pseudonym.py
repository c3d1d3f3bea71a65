"""The buyer's keyed pseudonym (a plain function)."""

from __future__ import annotations

import pyarrow as pa

from shared.pseudonym import pseudonym, without_erased_buyers


def test_pseudonym_is_keyed_and_stable():
    assert pseudonym("A1", b"k1") == "9bbbe6676bdcfe64e101e4c5cf84933f"  # HMAC-SHA256, hex, cut to 32
    assert pseudonym("A1", b"k1") != pseudonym("A1", b"k2")
    assert pseudonym("A1", b"k1") != pseudonym("A2", b"k1")


def test_the_reviews_of_erased_buyers_are_left_out_of_a_raw_table():
    raw = pa.table({"review_id": [1, 2, 3, 4], "buyer_id": ["GONE", "KEPT", None, "GONE"]})
    erased = frozenset({pseudonym("GONE", b"k1")})
    assert without_erased_buyers(raw, erased, b"k1").column("review_id").to_pylist() == [2, 3]
    assert without_erased_buyers(raw, erased, b"other key").num_rows == 4  # a pseudonym is only what its key made
    assert without_erased_buyers(raw, frozenset(), b"k1") is raw
