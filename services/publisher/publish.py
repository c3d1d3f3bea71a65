"""Publish: merge a run's scored batches into one curated file, then switch "latest".

The pointer moves only after the file is complete in S3, so the API never sees a
half-written version, and a failed run leaves the previous version as latest.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc

from shared.lake import CURATED_CHANNEL, CuratedVersion, Lake, curated_key
from shared.schemas import CURATED, SCORED


class DuplicateReviews(ValueError):
    """Two scored batches hold the same review: a bug upstream, never published."""


def merge(tables: list[pa.Table], erased: frozenset[str] = frozenset()) -> pa.Table:
    table = (
        pa.concat_tables([t.select(CURATED.names).cast(CURATED) for t in tables]) if tables else CURATED.empty_table()
    )
    if erased:  # an erasure requested after this run's transform still applies to its file
        table = table.filter(pc.invert(pc.is_in(table.column("buyer_pseudonym"), pa.array(sorted(erased)))))
    if pc.count_distinct(table.column("review_id")).as_py() != table.num_rows:
        raise DuplicateReviews("the run's scored batches hold the same review twice")
    return table.sort_by([("product_id", "ascending"), ("relevance_score", "descending"), ("review_id", "ascending")])


def publish(
    lake: Lake, run_id: str, scored_keys: list[str], keep: int, erased: frozenset[str] = frozenset(),
    now: datetime | None = None,
) -> CuratedVersion:  # fmt: skip
    table = merge([lake.get_table(key, SCORED) for key in scored_keys], erased)
    key = curated_key(run_id)
    size = lake.put_table(key, table)
    version = CuratedVersion(run_id, key, table.num_rows, size, (now or datetime.now(UTC)).isoformat())
    lake.set_latest(version)
    prune(lake, keep, protect=version.version)
    return version


def announce(redis, version: CuratedVersion) -> None:
    """Tell the API a new version is latest; it also polls the pointer, so a lost message only delays."""
    redis.publish(CURATED_CHANNEL, version.to_json())


def prune(lake: Lake, keep: int, protect: str) -> list[str]:
    """Delete curated versions beyond the newest ``keep``, never the one ``latest`` names."""
    versions = lake.curated_versions()
    doomed = [v for v in versions[: max(0, len(versions) - keep)] if v != protect]
    lake.delete([curated_key(v) for v in doomed])
    return doomed
