"""The buyer's keyed pseudonym: what the transform puts in place of a buyer id, and what an erasure records.

HMAC-SHA256, stable across runs so analytics can still group by buyer, and useless without the key.
"""

from __future__ import annotations

import hashlib
import hmac


def pseudonym(buyer_id: str, key: bytes) -> str:
    if not key:
        raise ValueError("PSEUDONYM_KEY is empty: buyer ids cannot be pseudonymised without it")
    return hmac.new(key, buyer_id.encode(), hashlib.sha256).hexdigest()[:32]
