"""The serving files of a curated version (shared/serving_format.py), built from its finished Parquet.

Publish writes them once the curated file is complete and before "latest" moves, so the API never
follows the pointer to a version without them; they are pruned with their version; a rollback to a
version that has none (published before they existed, or deleted by hand) builds them first.

The curated file is read back range by range of whole products: memory holds one range, the
products' summaries and the search terms (tens of MB at ten million reviews), never the reviews.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import zstandard

from shared import curated
from shared.curated.summary import summaries
from shared.lake import Lake, curated_key
from shared.schemas import CURATED
from shared.serving_format import (
    HEAD,
    MATCH,
    NAMES,
    PUBLIC_FIELDS,
    REVIEWS,
    SERVING_PREFIX,
    SUMMARIES,
    TERMS,
    products_schema,
    schema_metadata,
    serving_key,
    version_of,
    words,
)
from shared.settings import Settings

# What the serving files need of a curated row: the public fields, the product's, and the order's.
CURATED_COLUMNS = [
    "product_id",
    "product_title",
    "product_category",
    "review_id",
    "rating",
    "title",
    "text",
    "reviewed_at",
    "category",
    "category_confidence",
    "relevance_score",
    "helpful_votes",
    "verified_purchase",
    "mentions",
    "topics",
]
CHUNK = 4 << 20  # bytes read at a time when hashing
# Each review's JSON is compressed on its own (a request reads a few), with a dictionary learnt from the
# version's first reviews: field names and common words cost a few bits, and a review ~a third of its size.
DICTIONARY_BYTES = 112 << 10
DICTIONARY_SAMPLES = 20_000  # at most; below MIN_SAMPLES the frames go without a dictionary
MIN_SAMPLES = 1_000
# The reviews a product keeps when the caller names no number (the setting's default, API_REVIEWS_PER_PRODUCT).
REVIEWS_KEPT = Settings.model_fields["api_reviews_per_product"].default


class NotServable(ValueError):
    """A curated file the serving files cannot be built from (its products out of order): never published."""


@dataclass(frozen=True)
class ServingFiles:
    version: str
    folder: Path  # the files, as they go to the lake and to the API's cache
    products: int
    reviews: int  # reviews kept, at most reviews_kept a product
    rows: int  # curated reviews
    sizes: dict[str, int]  # bytes of each file

    @property
    def size(self) -> int:
        return sum(self.sizes.values())


def _ranges(path: Path) -> Iterator[pa.Table]:
    """The curated rows, range by range of whole products: a batch's last product waits for the next batch,
    where it may go on (publish cuts a large range into several row groups)."""
    held = pa.table({name: pa.array([], pa.null()) for name in CURATED_COLUMNS})
    source = pq.ParquetFile(path)
    present = [name for name in CURATED_COLUMNS if name in source.schema_arrow.names]
    for batch in source.iter_batches(batch_size=curated.RANGE_ROWS, columns=present):
        rows = pa.Table.from_batches([batch])
        for name in CURATED_COLUMNS:  # a version published before sentence mentions: none, as empty ones read
            if name not in present:
                rows = rows.append_column(CURATED.field(name), pa.nulls(rows.num_rows, CURATED.field(name).type))
        rows = pa.concat_tables([held, rows.select(CURATED_COLUMNS)], promote_options="permissive")
        ids = rows.column("product_id")
        held = rows.slice(pc.index(ids, ids[-1]).as_py())
        if held.num_rows < rows.num_rows:
            yield rows.slice(0, rows.num_rows - held.num_rows)
    if held.num_rows:
        yield held


class _Products:
    """The products seen so far, in id order, with their search terms."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.columns: dict[str, list[pa.Array]] = {
            n: []
            for n in ("title", "category", "review_count", "average_rating", "batch", "row", "head", "rest_row", "rest")
        }
        self.terms: list[str] = []
        self.term_products: list[int] = []

    def add(self, ids: list[str], titles: pa.Array, **columns: pa.Array) -> None:
        if (ids and self.ids and ids[0] <= self.ids[-1]) or any(a >= b for a, b in zip(ids, ids[1:], strict=False)):
            raise NotServable("the curated file's products are not in strictly ascending id order")
        for product, (pid, title) in enumerate(zip(ids, titles.to_pylist(), strict=True), start=len(self.ids)):
            found = set(words(pid)) | set(words(title or ""))
            self.terms.extend(found)
            self.term_products.extend([product] * len(found))
        self.ids.extend(ids)
        self.columns["title"].append(titles)
        for name, values in columns.items():
            self.columns[name].append(values)

    def table(self, version: str) -> pa.Table:
        encoded = [pid.encode() for pid in self.ids]
        if any(b"\0" in key for key in encoded):
            raise NotServable("a product id holds a NUL byte")
        width = max((len(key) for key in encoded), default=1)
        keys = np.array(encoded, dtype=f"S{width}")
        schema = products_schema(width).with_metadata(schema_metadata(version))
        columns = {
            "product_id": pa.array(self.ids, pa.string()),
            "key": pa.FixedSizeBinaryArray.from_buffers(
                schema.field("key").type, len(keys), [None, pa.py_buffer(keys.tobytes())]
            ),
            **{name: pa.concat_arrays(parts) if parts else pa.array([]) for name, parts in self.columns.items()},
        }
        return pa.table([columns[f.name].cast(f.type) for f in schema], schema=schema)

    def terms_table(self, version: str) -> pa.Table:
        table = pa.table(
            {"term": pa.array(self.terms, pa.string()), "product": pa.array(self.term_products, pa.int32())}
        )
        table = table.sort_by([("term", "ascending"), ("product", "ascending")])
        return table.cast(TERMS).replace_schema_metadata(schema_metadata(version))


def _review_json(kept: pa.Table) -> pa.Array:
    """Each review's public fields as the answer's JSON object (floats to 4 decimals, the day in UTC)."""
    columns = {name: kept.column(name).to_pylist() for name in PUBLIC_FIELDS if name != "date"}
    columns["date"] = pc.cast(kept.column("reviewed_at"), pa.date32()).to_pylist()  # UTC: the zone it carries
    for name in ("category_confidence", "relevance_score"):
        columns[name] = [None if v is None else round(v, 4) for v in columns[name]]
    columns["topics"] = [v or [] for v in columns["topics"]]
    values = [columns[name] for name in PUBLIC_FIELDS]
    return pa.array(
        [orjson.dumps(dict(zip(PUBLIC_FIELDS, row, strict=True))) for row in zip(*values, strict=True)], pa.binary()
    )


class _Compressor:
    """Compresses each JSON value on its own, with a dictionary learnt from samples when there are enough."""

    def __init__(self, samples: list[bytes]):
        self.dictionary: zstandard.ZstdCompressionDict | None = None
        if len(samples) >= MIN_SAMPLES:
            try:
                self.dictionary = zstandard.train_dictionary(DICTIONARY_BYTES, samples[:DICTIONARY_SAMPLES])
            except zstandard.ZstdError:  # samples too alike to learn from: frames without a dictionary
                self.dictionary = None
        self._zstd = zstandard.ZstdCompressor(level=3, dict_data=self.dictionary, write_dict_id=False)

    def metadata(self) -> str:
        return base64.b64encode(self.dictionary.as_bytes()).decode() if self.dictionary else ""

    def compress(self, values: list[bytes]) -> pa.Array:
        return pa.array([self._zstd.compress(value) for value in values], pa.binary())

    def public(self, rows: pa.Table, keep: np.ndarray) -> pa.RecordBatch:
        """The kept rows as reviews.arrow holds them, in one record batch."""
        kept = rows.filter(pa.array(keep))
        columns = {
            "review": self.compress(_review_json(kept).to_pylist()),
            "mentions": _matches(kept.column("mentions").combine_chunks()),
            **{name: kept.column(name).combine_chunks() for name in ("category", "rating", "verified_purchase")},
        }
        return pa.RecordBatch.from_arrays([columns[f.name].cast(f.type) for f in REVIEWS], schema=REVIEWS)


def _matches(mentions: pa.Array) -> pa.Array:
    """The mentions with a topic, as reviews.arrow's ``mentions`` keeps them (null, none: empty)."""
    mentions = pc.fill_null(mentions, pa.scalar([], mentions.type))
    flat = pc.list_flatten(mentions)
    parents = pc.list_parent_indices(mentions)
    keep = flat.field("topic").is_valid()
    kept = pc.filter(flat, keep)
    lengths = np.bincount(pc.filter(parents, keep).to_numpy(zero_copy_only=False), minlength=len(mentions))
    offsets = pa.array(np.concatenate(([0], np.cumsum(lengths))).astype(np.int32))
    values = pa.StructArray.from_arrays([kept.field(f.name) for f in MATCH.fields], fields=list(MATCH.fields))
    return pa.ListArray.from_arrays(offsets, values, type=pa.list_(MATCH))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _file(folder: Path, name: str) -> Path:
    return folder / f"{name}.arrow"


def _ranks(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where each product of a range starts, its review count, and each row's rank within its product."""
    starts = np.concatenate(([0], np.flatnonzero(ids[1:] != ids[:-1]) + 1)) if len(ids) else np.zeros(0, np.int64)
    counts = np.diff(np.append(starts, len(ids)))
    return starts, counts, np.arange(len(ids)) - np.repeat(starts, counts)


def build(curated: Path, folder: Path, version: str, reviews_kept: int) -> ServingFiles:
    """The serving files of the curated file at ``curated``, in ``folder``."""
    products = _Products()
    rows = kept_rows = 0
    ranges = _ranges(curated)
    first = next(ranges, None)
    said: list[bytes] = []  # the first range's product summaries: samples for their dictionary
    if first is None:
        compressor = _Compressor([])
    else:
        starts, counts, rank = _ranks(first.column("product_id").to_numpy(zero_copy_only=False))
        compressor = _Compressor(_review_json(first.filter(pa.array(rank < reviews_kept))).to_pylist())
        said = summaries(first, starts, counts)
    summary_compressor = _Compressor(said)
    head = min(HEAD, reviews_kept)
    reviews_schema = REVIEWS.with_metadata(
        schema_metadata(version, reviews_kept=str(reviews_kept), zstd_dictionary=compressor.metadata())
    )
    summaries_schema = SUMMARIES.with_metadata(schema_metadata(version, zstd_dictionary=summary_compressor.metadata()))
    with (
        pa.ipc.new_file(_file(folder, "reviews"), reviews_schema) as writer,
        pa.ipc.new_file(_file(folder, "summaries"), summaries_schema) as summary_writer,
    ):
        for pair, table in enumerate(itertools.chain([first] if first else [], ranges)):
            ids = table.column("product_id").to_numpy(zero_copy_only=False)
            starts, counts, rank = _ranks(ids)
            firsts, rest = np.minimum(counts, head), np.maximum(0, np.minimum(counts, reviews_kept) - head)
            ratings = table.column("rating").to_numpy(zero_copy_only=False).astype(np.int64)
            described = table.select(["product_title", "product_category"]).take(pa.array(starts))
            products.add(
                ids[starts].tolist(),
                described.column("product_title").combine_chunks(),
                category=described.column("product_category").combine_chunks(),
                review_count=pa.array(counts, pa.int32()),
                average_rating=pa.array(np.add.reduceat(ratings, starts) / counts),
                batch=pa.array(np.full(len(starts), 2 * pair), pa.int32()),
                row=pa.array(np.cumsum(firsts) - firsts, pa.int32()),
                head=pa.array(firsts, pa.int32()),
                rest_row=pa.array(np.cumsum(rest) - rest, pa.int32()),
                rest=pa.array(rest, pa.int32()),
            )
            writer.write_batch(compressor.public(table, rank < head))
            writer.write_batch(compressor.public(table, (rank >= head) & (rank < reviews_kept)))
            said = said if pair == 0 else summaries(table, starts, counts)
            summary_writer.write_batch(pa.record_batch([summary_compressor.compress(said)], schema=SUMMARIES))
            rows += table.num_rows
            kept_rows += int(firsts.sum() + rest.sum())
    for name, table in (("products", products.table(version)), ("terms", products.terms_table(version))):
        with pa.ipc.new_file(_file(folder, name), table.schema) as writer:
            writer.write_table(table, max_chunksize=max(1, table.num_rows))  # one batch: contiguous arrays
    sizes = {name: _file(folder, name).stat().st_size for name in NAMES}
    return ServingFiles(version, folder, len(products.ids), kept_rows, rows, sizes)


def upload(lake: Lake, files: ServingFiles) -> None:
    """Each file with its SHA-256 and size on the object's head, which the API checks."""
    for name in NAMES:
        path = _file(files.folder, name)
        metadata = {"sha256": _sha256(path), "size": str(files.sizes[name])}
        lake.put_file(
            serving_key(files.version, name), path, metadata=metadata, content_type="application/vnd.apache.arrow.file"
        )


def write(lake: Lake, version: str, curated: Path, reviews_kept: int) -> ServingFiles:
    """Build the serving files of a finished curated file and put them in the lake."""
    with tempfile.TemporaryDirectory(prefix="serving-") as tmp:
        files = build(curated, Path(tmp), version, reviews_kept)
        upload(lake, files)
    return files


def exists(lake: Lake, version: str) -> bool:
    return all(lake.exists(serving_key(version, name)) for name in NAMES)


def ensure(lake: Lake, version: str, reviews_kept: int) -> bool:
    """Build a version's serving files from its curated file when the lake lacks them; True when it did."""
    if exists(lake, version):
        return False
    with tempfile.TemporaryDirectory(prefix="serving-") as tmp:
        curated = Path(tmp) / "curated.parquet"
        lake.get_file(curated_key(version), curated)
        write(lake, version, curated, reviews_kept)
    return True


def prune(lake: Lake, kept: set[str]) -> list[str]:
    """Delete the serving files of every version not in ``kept``; returns the keys deleted."""
    doomed = [key for key in lake.list_keys(SERVING_PREFIX) if version_of(key) not in kept]
    lake.delete(doomed)
    return doomed
