"""The reviews whose model outputs a curated version already holds, so a run need not classify them again.

A shop changes a review's votes far more often than its text, and every change brings the review into
the next incremental run. A review the run reads whose product and text (with the classifier's
fingerprint: ``content_hash``) are those of the version the run builds upon keeps its outputs: the
classifier skips it and publish carries its outputs over from that version, where it meets the
review in the same range of products.

Each version has a file of one 64-bit key per review, ``curated/known/<version>.u64``, written by publish
as it writes the version (unsorted, streamed: publish's memory stays one range) and pruned with it. A
classify worker reads the file of its run's base once, sorted: 8 bytes a review of the catalogue, a
binary search per review of the batch. A version without the file (published before it existed)
only means its reviews are classified again. A changed review whose key collides with another's (a
chance of about 3 in 10^7 a run at 50 million reviews and 100,000 changes) never gets wrong outputs:
publish finds no base row of that id, product and hash, and fails the run (``OutputsMissing``); a
full run gets past it.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa

from shared.lake import Lake, known_key

# A scored row without this output is one the classifier left for publish to fill from the base.
UNSCORED_MARK = "rel_model"
NONE = np.zeros(0, dtype=np.uint64)  # no version to build upon, or one without keys: nothing is known


def keys(table: pa.Table) -> np.ndarray:
    """One key per row of ``review_id``, ``product_id`` and ``content_hash`` (none of them null)."""
    rows = zip(*(table.column(n).to_pylist() for n in ("review_id", "product_id", "content_hash")), strict=True)
    digests = b"".join(hashlib.blake2b(f"{i}\x1f{p}\x1f{h}".encode(), digest_size=8).digest() for i, p, h in rows)
    return np.frombuffer(digests, dtype="<u8").astype(np.uint64)


def read(lake: Lake, version: str) -> np.ndarray:
    """The sorted keys of ``version``; empty when it has no file."""
    key = known_key(version)
    if not lake.exists(key):
        return NONE
    return np.sort(np.frombuffer(lake.get_bytes(key), dtype="<u8").astype(np.uint64))


def member(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    """``values`` in ``sorted_set`` (ascending): a binary search each, not a sort of the set."""
    if len(sorted_set) == 0:
        return np.zeros(len(values), dtype=bool)
    at = np.searchsorted(sorted_set, values).clip(max=len(sorted_set) - 1)
    return sorted_set[at] == values
