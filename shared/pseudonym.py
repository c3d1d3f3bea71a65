"""The buyer's keyed pseudonym: what the transform puts in place of a buyer id, and what an erasure records.

HMAC-SHA256, stable across runs so analytics can still group by buyer, and useless without the key.
"""

from __future__ import annotations

import hashlib
import hmac

import numpy as np
import pyarrow as pa


def pseudonym(buyer_id: str, key: bytes) -> str:
    if not key:
        raise ValueError("PSEUDONYM_KEY is empty: buyer ids cannot be pseudonymised without it")
    return hmac.new(key, buyer_id.encode(), hashlib.sha256).hexdigest()[:32]


def of_erased_buyers(buyer_ids: pa.Array | pa.ChunkedArray, erased: frozenset[str], key: bytes) -> np.ndarray:
    """Which of these plain buyer ids belong to buyers who asked to be forgotten (``erased``: their pseudonyms)."""
    if not erased:
        return np.zeros(len(buyer_ids), dtype=bool)
    return np.fromiter((b is not None and pseudonym(b, key) in erased for b in buyer_ids.to_pylist()), dtype=bool)


def without_erased_buyers(raw: pa.Table, erased: frozenset[str], key: bytes) -> pa.Table:
    """A raw table (plain ``buyer_id``) less the reviews of buyers who asked to be forgotten."""
    forgotten = of_erased_buyers(raw.column("buyer_id"), erased, key)
    return raw.filter(pa.array(~forgotten)) if forgotten.any() else raw
