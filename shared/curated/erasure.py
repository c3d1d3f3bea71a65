"""Right to erasure in the curated zone: every kept version rewritten without the buyers forgotten.

A later run leaves them out anyway (transform and publish read the erasure table), but until then
the served version, and every older one an operator can roll back to, would still hold their
reviews. So an erasure rewrites each kept curated file that holds any, row group by row group
(memory holds one), rebuilds its serving files, and moves "latest" to the rewritten served version:
its row count changes, which is what makes the API load it again (services/api/serving/cache.py).

What it costs. Whether a version holds the buyers is answered from its ``buyer_pseudonym`` column
alone, read by ranged GETs (Parquet's column projection: the footer, then that column's chunks),
about 3 % of the file at 1M reviews, without a download, a decode of the rest, or a write: a buyer
no version holds costs that read per version, and only the versions that hold them are rewritten
(BENCHMARKS.md, "Right to erasure", measured at 1M). Chosen over:
- row-group statistics: rows are ordered by product and pseudonyms are keyed hashes, so every row
  group's min and max span nearly the whole range and rule nothing out;
- a Parquet bloom filter: pyarrow writes them but does not read them, so the check would mean
  parsing their Thrift headers and hashing with xxHash64 by hand;
- a buyer -> row group index beside each version: one more object to keep in step with every
  version, and it would itself hold every pseudonym and need erasing too.
A version that holds them is rewritten whole, with its serving files: a Parquet file cannot be
patched in place (a row group's new size moves every later offset its footer records), and the
serving files' products, batches and offsets follow from every range.

A run publishing at that very moment read the erasure table before the request: its version may
still hold the buyer until the next run, or until the command, which is idempotent, is run again.
The run zones (raw/, cleaned/, scored/, rejects/) are not rewritten here.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from shared import curated
from shared.curated import serving
from shared.lake import CuratedVersion, Lake, curated_key


def erased_rows(table: pa.Table, erased: frozenset[str]) -> np.ndarray:
    """Which rows are reviews of buyers who asked to be forgotten."""
    if not erased:
        return np.zeros(table.num_rows, dtype=bool)
    return pc.is_in(table.column("buyer_pseudonym"), pa.array(sorted(erased))).to_numpy(zero_copy_only=False)


@dataclass(frozen=True)
class Rewritten:
    version: str
    removed: int  # reviews of the buyers forgotten
    rows: int  # what the version holds now
    size_bytes: int


def holds_any(lake: Lake, version: str, erased: frozenset[str]) -> bool:
    """Whether ``version`` holds a review of the ``erased`` buyers, from its ``buyer_pseudonym`` column only."""
    if not erased:
        return False
    with lake.ranged(curated_key(version)) as obj:
        buyers = pq.ParquetFile(obj).read(columns=["buyer_pseudonym"])
    return bool(erased_rows(buyers, erased).any())


def rewrite_version(lake: Lake, version: str, erased: frozenset[str], reviews_kept: int) -> Rewritten | None:
    """The curated file of ``version`` and its serving files without the ``erased`` buyers' reviews;
    None when it holds none (nothing is written)."""
    with tempfile.TemporaryDirectory(prefix="erasure-") as tmp:
        source, out = Path(tmp) / "curated.parquet", Path(tmp) / "rewritten.parquet"
        lake.get_file(curated_key(version), source)
        kept = pq.ParquetFile(source)
        removed = rows = 0
        with pq.ParquetWriter(out, kept.schema_arrow, compression="zstd") as writer:
            for group in range(kept.num_row_groups):
                table = kept.read_row_group(group)
                forgotten = erased_rows(table, erased)
                removed += int(forgotten.sum())
                table = table.filter(pa.array(~forgotten))
                rows += table.num_rows
                if table.num_rows:
                    writer.write_table(table, row_group_size=curated.RANGE_ROWS)
        if not removed:
            return None
        # Serving files first: a reader that follows "latest" meanwhile finds the old pair or the new one.
        serving.write(lake, version, out, reviews_kept)
        lake.put_file(curated_key(version), out, metadata={"rows": str(rows)})
        return Rewritten(version, removed, rows, out.stat().st_size)


def forget_in_curated(
    lake: Lake, erased: frozenset[str], reviews_kept: int
) -> tuple[list[Rewritten], CuratedVersion | None]:
    """Rewrite every kept version holding the ``erased`` buyers' reviews. Returns what was rewritten,
    and the new "latest" pointer when the served version was (to announce), else None."""
    holding = [v for v in lake.curated_versions() if holds_any(lake, v, erased)]
    rewritten = [r for v in holding if (r := rewrite_version(lake, v, erased, reviews_kept))]
    served = lake.latest()
    changed = next((r for r in rewritten if served and r.version == served.version), None)
    if served is None or changed is None:
        return rewritten, None
    # published_at stays the version's own: its age is what alerting looks at.
    pointer = CuratedVersion(served.version, served.key, changed.rows, changed.size_bytes, served.published_at)
    lake.set_latest(pointer)
    return rewritten, pointer
