"""Publish: the new curated version, from the run's scored delta and the version it builds upon.

A full run's delta is the whole catalogue. An incremental run streams its base (the served
curated file, sorted by product) range of whole products by range: a base review is kept unless
the run read it again (the delta holds its new state, or it is rejected now), it is gone from the
source, or its buyer asked to be forgotten; the delta's reviews of the same products join it.
Every review's relevance is then computed as of the run's day, over whole products, and each range
is sorted and written. Memory holds the delta and one range of the base, whatever the catalogue.

A review the run read again with its product and text unchanged (its votes changed, say) comes
without model outputs: the classifier left it (shared/known.py), and its outputs are carried over
from its base row, which is in the same range. The version's known keys are written beside it.

The pointer moves only after the file is complete in S3, so the API never sees a
half-written version, and a failed run leaves the previous version as latest.
"""

from __future__ import annotations

import tempfile
from bisect import bisect_left
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from shared import curated, known
from shared.curated import serving
from shared.curated.erasure import erased_rows
from shared.curated.versions import prune
from shared.known import member
from shared.lake import CuratedVersion, Lake, curated_key, known_key
from shared.schemas import CURATED, MODEL_FIELDS, SCORED

# What carry_outputs takes from the base: the outputs (the hash and the classifier are the delta's own, equal).
CARRIED_FIELDS = [n for n, _ in MODEL_FIELDS if n not in ("content_hash", "model_fingerprint")]

Scorer = Callable[[pa.Table], pa.Table]  # scored rows of whole products -> with the relevance fields


class DuplicateReviews(ValueError):
    """Two scored batches hold the same review: a bug upstream, never published."""


class ClassifierChanged(ValueError):
    """A version never mixes the outputs of two classifiers: that needs a full run."""


class OutputsMissing(ValueError):
    """A review the classifier left to publish has no outputs to carry over in the base: a bug, never published."""


@dataclass(frozen=True)
class Base:
    """The version an incremental run builds upon, and what the run learnt of the source."""

    key: str
    fingerprint: str  # the classifier whose outputs the base holds
    reread_ids: np.ndarray  # every review the run extracted: the delta has its new state, if valid
    live_ids: np.ndarray  # every review still in the source, in the run's snapshot


@dataclass
class Changes:
    base_rows: int = 0  # rows read from the base version
    delta_rows: int = 0  # rows the run scored
    carried: int = 0  # base reviews kept (their relevance recomputed as of the run's day)
    replaced: int = 0  # base reviews whose new state the run read
    added: int = 0  # reviews new to the catalogue
    deleted: int = 0  # base reviews gone from the source
    withdrawn: int = 0  # base reviews read again and rejected now
    erased: int = 0  # reviews of buyers who asked to be forgotten
    outputs_reused: int = 0  # delta reviews not classified again: product and text unchanged, outputs carried over

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class Published:
    version: CuratedVersion
    changes: Changes = field(default_factory=Changes)
    fingerprint: str | None = None
    curated_bytes: int = 0  # every curated object written: the Parquet, its known keys, its serving files


def _ids(table: pa.Table) -> np.ndarray:
    return table.column("review_id").to_numpy(zero_copy_only=False).astype(np.int64)


def read_delta(lake: Lake, keys: list[str], erased: frozenset[str], changes: Changes) -> pa.Table:
    """The run's scored batches as one table sorted by product, without forgotten buyers."""
    tables = [lake.get_table(key, SCORED) for key in keys]
    delta = pa.concat_tables(tables) if tables else SCORED.empty_table()
    changes.delta_rows += delta.num_rows
    forgotten = erased_rows(delta, erased)
    changes.erased += int(forgotten.sum())
    delta = delta.filter(pa.array(~forgotten))
    if pc.count_distinct(delta.column("review_id")).as_py() != delta.num_rows:
        raise DuplicateReviews("the run's scored batches hold the same review twice")
    return delta.sort_by([("product_id", "ascending")])


def delta_fingerprint(delta: pa.Table) -> str | None:
    found = pc.unique(delta.column("model_fingerprint")).to_pylist()
    if len(found) > 1:
        raise ClassifierChanged(f"the run's batches were scored by {len(found)} classifiers: {sorted(map(str, found))}")
    return found[0] if found else None


def product_ranges(base: Iterator[pa.Table], delta: pa.Table) -> Iterator[tuple[pa.Table, pa.Table]]:
    """(base rows, delta rows) of consecutive ranges of whole products, in product order.

    Both are sorted by product. A product's rows may continue in the next base batch only when it
    is the batch's last product, so that one waits; the delta's rows before it join the range.
    """
    products = delta.column("product_id").to_pylist()
    start, pending = 0, None
    for batch in base:
        batch = batch if pending is None else pa.concat_tables([pending, batch])
        if batch.num_rows == 0:
            continue
        last = batch.column("product_id")[-1].as_py()
        cut = pc.index(batch.column("product_id"), last).as_py()
        pending = batch.slice(cut)
        if cut:
            end = bisect_left(products, last, lo=start)
            yield batch.slice(0, cut), delta.slice(start, end - start)
            start = end
    yield (pending if pending is not None else CURATED.empty_table()), delta.slice(start)


def base_batches(path: Path) -> Iterator[pa.Table]:
    for batch in pq.ParquetFile(path).iter_batches(batch_size=curated.RANGE_ROWS):
        yield pa.Table.from_batches([batch]).select(CURATED.names).cast(CURATED)


def keep_from_base(
    rows: pa.Table, base: Base, delta_ids: np.ndarray, erased: frozenset[str], changes: Changes
) -> pa.Table:
    """The base rows of one range that stay as they are, as scored rows; counts what leaves."""
    ids = _ids(rows)
    changes.base_rows += rows.num_rows
    live = member(ids, base.live_ids)
    reread = live & member(ids, base.reread_ids)
    replaced = reread & member(ids, delta_ids)
    forgotten = live & ~reread & erased_rows(rows, erased)
    keep = live & ~reread & ~forgotten
    changes.deleted += int((~live).sum())
    changes.replaced += int(replaced.sum())
    changes.withdrawn += int((reread & ~replaced).sum())
    changes.erased += int(forgotten.sum())
    changes.carried += int(keep.sum())
    return rows.filter(pa.array(keep)).select(SCORED.names)


def carry_outputs(fresh: pa.Table, base_rows: pa.Table, changes: Changes) -> pa.Table:
    """The delta rows of one range with the outputs the classifier left out taken from the base."""
    pending = pc.is_null(fresh.column(known.UNSCORED_MARK)).to_numpy(zero_copy_only=False)
    if not pending.any():
        return fresh
    ids, base_ids = _ids(fresh)[pending], _ids(base_rows)
    source = np.zeros(len(ids), dtype=np.int64)
    found = np.zeros(len(ids), dtype=bool)
    if len(base_ids):
        order = np.argsort(base_ids, kind="stable")
        source = order[np.searchsorted(base_ids[order], ids).clip(max=len(base_ids) - 1)]
        same_text = (
            base_rows.column("content_hash").to_numpy(zero_copy_only=False)[source]
            == fresh.column("content_hash").to_numpy(zero_copy_only=False)[pending]
        )
        found = (base_ids[source] == ids) & same_text
    if not found.all():
        raise OutputsMissing(
            f"{int((~found).sum())} reviews were left unclassified but their outputs are not in the "
            f"base version, e.g. review ids {ids[~found][:5].tolist()}: run a full run "
            "(reviews run --full)"
        )
    take = np.zeros(fresh.num_rows, dtype=np.int64)
    take[pending] = source
    mask = pa.array(pending)
    for name in CARRIED_FIELDS:
        carried = base_rows.column(name).combine_chunks().take(take)
        column = pc.if_else(mask, carried, fresh.column(name).combine_chunks())
        fresh = fresh.set_column(fresh.schema.get_field_index(name), fresh.schema.field(name), column)
    changes.outputs_reused += int(pending.sum())
    return fresh


def curated_range(rows: pa.Table, score: Scorer) -> pa.Table:
    """Scored rows of whole products as curated rows: relevance computed, most relevant first."""
    scored = score(rows)
    ordered = scored.sort_by(
        [("product_id", "ascending"), ("relevance_score", "descending"), ("review_id", "ascending")]
    )
    return ordered.select(CURATED.names).cast(CURATED)


def publish(
    lake: Lake,
    run_id: str,
    scored_keys: list[str],
    keep: int,
    score: Scorer,
    erased: frozenset[str] = frozenset(),
    base: Base | None = None,
    now: datetime | None = None,
    reviews_kept: int = serving.REVIEWS_KEPT,
) -> Published:
    """Write the run's curated version and its serving files, move "latest" to it, prune the oldest versions."""
    changes = Changes()
    delta = read_delta(lake, scored_keys, erased, changes)
    fingerprint = delta_fingerprint(delta)
    if base is not None and fingerprint is not None and fingerprint != base.fingerprint:
        raise ClassifierChanged(
            f"the served version was scored by classifier {base.fingerprint}, this run by "
            f"{fingerprint}: run a full run (reviews run --full)"
        )
    key = curated_key(run_id)
    rows = 0
    with tempfile.TemporaryDirectory(prefix="publish-") as tmp:
        out, keys = Path(tmp) / "curated.parquet", Path(tmp) / "known.u64"
        with pq.ParquetWriter(out, CURATED, compression="zstd") as writer, keys.open("wb") as keys_file:
            if base is None:
                # nothing to carry outputs over from: carry_outputs fails on a review left unclassified
                ranges: Iterator[tuple[pa.Table, pa.Table]] = iter(
                    [(SCORED.empty_table(), carry_outputs(delta, CURATED.empty_table(), changes))]
                )
            else:
                lake.get_file(base.key, Path(tmp) / "base.parquet")
                delta = delta.filter(pa.array(member(_ids(delta), base.live_ids)))  # deleted since it was read
                delta_ids = np.sort(_ids(delta))
                ranges = (
                    (keep_from_base(b, base, delta_ids, erased, changes), carry_outputs(d, b, changes))
                    for b, d in product_ranges(base_batches(Path(tmp) / "base.parquet"), delta)
                )
            for kept, fresh in ranges:
                table = curated_range(pa.concat_tables([kept, fresh]), score)
                if table.num_rows:
                    writer.write_table(table, row_group_size=curated.RANGE_ROWS)
                    keys_file.write(known.keys(table).astype("<u8").tobytes())
                    rows += table.num_rows
        changes.added = delta.num_rows - changes.replaced
        lake.put_file(key, out, metadata={"rows": str(rows)})
        lake.put_file(known_key(run_id), keys)
        size = out.stat().st_size
        files = serving.write(lake, run_id, out, reviews_kept)  # what the API maps: in the lake before "latest" moves
        written = size + keys.stat().st_size + files.size
    version = CuratedVersion(run_id, key, rows, size, (now or datetime.now(UTC)).isoformat())
    lake.set_latest(version)
    prune(lake, keep, protect=version.version)
    return Published(version, changes, fingerprint or (base.fingerprint if base else None), written)
