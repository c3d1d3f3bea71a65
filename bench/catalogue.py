"""Curated catalogues of any size for the API benchmark, built from the real shared reviews.

The real rows go through the project's own code, as a full run would take them: the source loader
(into the benchmark's private PostgreSQL), the extractor's page reader (through the read-only role),
the transform stage and the classifier (the real MiniLM, default settings). Scoring the ~24k shared
reviews takes minutes, so the scored table is cached outside the repository, keyed by the data files
and the classifier's fingerprint: `make bench` scores them once per machine.

A catalogue of N reviews repeats those scored reviews: each copy of a real product is a product of
its own, with a new ASIN-like id (a scramble of its number, so copies of one product lie far apart in
id order, as unrelated products do, and the files compress no better than real ones) and all of the
product's reviews under new review ids (k x 10^8 + the id, for copy k), and each buyer of copy k is a
buyer of its own, pseudonymised as the transform would pseudonymise an id ``<pseudonym>#k`` (what
`bench/erasure_bench.py` erases). So the catalogue has the real products' size distribution (1 to 878
reviews, median 9) and buyers' (a handful of reviews each), the real texts and titles, and N / 24k
times as many products and buyers. Publish's own code computes the relevance and the order, range by range, and writes
the curated Parquet: memory holds one range, whatever N.
"""

from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ops.source.loader import discover, load_paths
from ops.source.schema import create_source
from services.classifier.model import load_classifier
from services.classifier.scoring import model_outputs
from services.extractor.extract import connect_source, read_pages
from services.publisher.publish import curated_range
from services.transformer.transform import transform
from shared.curated import RANGE_ROWS
from shared.pseudonym import pseudonym
from shared.relevance import relevance
from shared.schemas import CURATED, SCORED
from shared.settings import Settings

CACHE = Path.home() / ".cache" / "review-intelligence" / "bench"
ID_STRIDE = 100_000_000  # copy k of review r: k * ID_STRIDE + r (real ids are the source's identity column)
SCRAMBLE = 2_654_435_761  # odd and not a multiple of 3: a bijection of the 36^9 ids


def _data_digest(data_dir: Path, fingerprint: str) -> str:
    files = sorted(discover([data_dir]))
    stamp = "|".join(f"{p.name}:{p.stat().st_size}" for p in files)
    return hashlib.sha1(f"{stamp}|{fingerprint}".encode()).hexdigest()[:16]


def scored_reviews(settings: Settings, data_dir: Path) -> pa.Table:
    """Every shared review, loaded, extracted, transformed and classified by the project's code (cached)."""
    classifier = load_classifier(settings)
    cached = CACHE / f"scored-{_data_digest(data_dir, classifier.fingerprint)}.parquet"
    if cached.exists():
        return pq.read_table(cached)
    print(f"scoring the shared reviews once (cached in {cached}) ...", file=sys.stderr, flush=True)
    started = time.monotonic()
    create_source(settings)
    load_paths(settings, [data_dir], progress=False)
    conn = connect_source(settings.source_reader_dsn)
    scored = []
    try:
        for raw in read_pages(conn, 2000):
            cleaned = transform(raw, settings.pseudonym_key.get_secret_value().encode(), datetime.now(UTC)).cleaned
            frame = cleaned.replace_schema_metadata(None).to_pandas()  # as the classify stage reads it back
            frame = pd.concat([frame, model_outputs(frame, classifier)], axis=1)
            scored.append(pa.Table.from_pandas(frame[SCORED.names], schema=SCORED, preserve_index=False))
            done = sum(t.num_rows for t in scored)
            print(f"  {done:,} scored, {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    finally:
        conn.close()
    table = pa.concat_tables(scored)
    CACHE.mkdir(parents=True, exist_ok=True)
    partial_file = cached.with_suffix(".partial")
    pq.write_table(table, partial_file, compression="zstd")
    partial_file.rename(cached)  # never a half-written cache
    return table


def _new_product_ids(count: int) -> np.ndarray:
    """``count`` distinct ASIN-like ids ("B" and 9 base-36 digits), a bijective scramble of 0..count-1:
    copies of one real product land far apart in id order, as unrelated products do."""
    space = 36**9
    assert np.gcd(SCRAMBLE, space) == 1 and count <= space
    numbers = (np.arange(count, dtype=object) * SCRAMBLE + 7) % space  # object: no int64 overflow
    digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"

    def base36(n: int) -> str:
        out = []
        for _ in range(9):
            n, d = divmod(n, 36)
            out.append(digits[d])
        return "B" + "".join(reversed(out))

    return np.array([base36(int(n)) for n in numbers])


def copy_buyer(buyer_pseudonym: str, copy: int) -> str:
    """The buyer id of a real buyer's copy ``copy``: the catalogue holds its pseudonym."""
    return f"{buyer_pseudonym}#{copy}"


def _copies(real: pa.Table, rows: int, key: bytes) -> Iterator[pa.Table]:
    """Scored rows of whole synthetic products, in product-id order, ``rows`` in all (the last product cut)."""
    real = real.sort_by([("product_id", "ascending")])
    ids = real.column("product_id").to_numpy(zero_copy_only=False)
    starts = np.flatnonzero(np.concatenate(([True], ids[1:] != ids[:-1])))
    sizes = np.diff(np.append(starts, real.num_rows))
    copies = -(-rows // real.num_rows)
    source = np.tile(np.arange(len(starts)), copies)  # synthetic product j copies real product source[j]
    copy = np.repeat(np.arange(copies), len(starts))
    new_ids = _new_product_ids(len(source))
    order = np.argsort(new_ids, kind="stable")
    counts = sizes[source[order]]
    total = np.cumsum(counts)
    last = int(np.searchsorted(total, rows))  # the product that reaches ``rows``
    counts[last] -= int(total[last] - rows)
    order, counts = order[: last + 1], counts[: last + 1]
    chunk_starts = np.searchsorted(np.cumsum(counts), np.arange(0, rows, RANGE_ROWS), side="right")
    for lo, hi in zip(chunk_starts, np.append(chunk_starts[1:], len(order)), strict=True):
        picked, n = order[lo:hi], counts[lo:hi]
        if not len(picked):
            continue
        first = np.repeat(starts[source[picked]] - np.cumsum(n) + n, n) + np.arange(int(n.sum()))
        part = real.take(pa.array(first))
        review_ids = pc.add(part.column("review_id"), pa.array(np.repeat(copy[picked], n) * ID_STRIDE))
        part = part.set_column(part.schema.get_field_index("review_id"), "review_id", review_ids)
        part = part.set_column(
            part.schema.get_field_index("product_id"), "product_id", pa.array(np.repeat(new_ids[picked], n))
        )
        buyers = zip(part.column("buyer_pseudonym").to_pylist(), np.repeat(copy[picked], n).tolist(), strict=True)
        part = part.set_column(
            part.schema.get_field_index("buyer_pseudonym"),
            "buyer_pseudonym",
            pa.array([pseudonym(copy_buyer(b, k), key) for b, k in buyers], pa.string()),
        )
        yield part


def write_catalogue(real: pa.Table, rows: int, path: Path, settings: Settings) -> None:
    """A curated Parquet of ``rows`` reviews at ``path``, as publish writes one."""
    score = partial(relevance, settings=settings, as_of=datetime.now(UTC))
    with pq.ParquetWriter(path, CURATED, compression="zstd") as writer:
        for scored in _copies(real, rows, settings.pseudonym_key.get_secret_value().encode()):
            writer.write_table(curated_range(scored, score), row_group_size=RANGE_ROWS)
