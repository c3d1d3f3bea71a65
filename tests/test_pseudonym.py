"""The buyer's keyed pseudonym (a plain function)."""

from __future__ import annotations

from shared.pseudonym import pseudonym


def test_pseudonym_is_keyed_and_stable():
    assert pseudonym("A1", b"k1") == "9bbbe6676bdcfe64e101e4c5cf84933f"  # HMAC-SHA256, hex, cut to 32
    assert pseudonym("A1", b"k1") != pseudonym("A1", b"k2")
    assert pseudonym("A1", b"k1") != pseudonym("A2", b"k1")
