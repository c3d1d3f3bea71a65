"""Right to erasure in the run zones: every object of raw/, cleaned/, scored/ and rejects/ rewritten without
the buyer forgotten.

Each run writes its batches there (raw with the plain buyer id, the others with the pseudonym). Later runs
never write the buyer again (extract leaves them out), but the objects of earlier runs hold them until the
retention removes them, so an erasure reads every run-zone object and rewrites those holding the buyer. A
rewritten batch keeps its key, so a retry of its run still finds its input. The cost grows with what the
run zones hold, which the retention bounds (a few weeks of daily changes), not with the catalogue.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from shared.lake import RUN_ZONES, Lake

# Reads overlap: each object is a round trip to S3, and the objects are many and small.
READERS = 8


@dataclass(frozen=True)
class ZoneErasure:
    zone: str
    objects_read: int
    objects_rewritten: int
    rows_removed: int


def _parquet_without(data: bytes, column: str, values: list[str]) -> tuple[bytes, int] | None:
    table = pq.read_table(io.BytesIO(data))
    if column not in table.column_names:  # raw's live_ids: review ids only
        return None
    forgotten = pc.is_in(table.column(column), pa.array(values)).to_numpy(zero_copy_only=False)
    removed = int(np.sum(forgotten))
    if not removed:
        return None
    buffer = io.BytesIO()
    pq.write_table(table.filter(pa.array(~forgotten)), buffer, compression="zstd")
    return buffer.getvalue(), removed


def _csv_without(data: bytes, column: str, values: list[str]) -> tuple[bytes, int] | None:
    # Every cell read back as the text it is, so what the transform wrote (quoting, neutralised formulas) stays.
    frame = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False)
    forgotten = frame[column].isin(values)
    removed = int(forgotten.sum())
    if not removed:
        return None
    return frame.loc[~forgotten].to_csv(index=False).encode(), removed


def forget_in_run_zones(lake: Lake, buyer_id: str, pseudonyms: frozenset[str]) -> list[ZoneErasure]:
    """Rewrite every run-zone object holding ``buyer_id`` (raw) or any of ``pseudonyms`` (the other zones)."""
    by_zone: dict[str, tuple[str, list[str], Callable[[bytes, str, list[str]], tuple[bytes, int] | None]]] = {
        "raw": ("buyer_id", [buyer_id], _parquet_without),
        "cleaned": ("buyer_pseudonym", sorted(pseudonyms), _parquet_without),
        "scored": ("buyer_pseudonym", sorted(pseudonyms), _parquet_without),
        "rejects": ("buyer_pseudonym", sorted(pseudonyms), _csv_without),
    }
    report = []
    with ThreadPoolExecutor(READERS) as pool:
        for zone in RUN_ZONES:
            column, values, without = by_zone[zone]
            keys = lake.list_keys(f"{zone}/")

            def rewrite(key: str, column=column, values=values, without=without) -> int:
                rewritten = without(lake.get_bytes(key), column, values)
                if rewritten is None:
                    return 0
                data, removed = rewritten
                content_type = "text/csv" if key.endswith(".csv") else "application/vnd.apache.parquet"
                lake.put_bytes(key, data, content_type)
                return removed

            removed = list(pool.map(rewrite, keys))
            report.append(ZoneErasure(zone, len(keys), sum(1 for r in removed if r), sum(removed)))
    return report
