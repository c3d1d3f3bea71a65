"""The buyer's keyed pseudonym (a plain function)."""

from __future__ import annotations

from shared.pseudonym import pseudonym


def test_pseudonym_is_keyed_and_stable():
    assert pseudonym("A1", b"k1") == pseudonym("A1", b"k1")
    assert pseudonym("A1", b"k1") != pseudonym("A1", b"k2")
    assert pseudonym("A1", b"k1") != pseudonym("A2", b"k1")
