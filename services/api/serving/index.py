"""The index the API serves from: one version's serving files (shared/serving_format.py), memory-mapped.

Opening a version maps its files and checks that they are whole, of this format and of this
version, and that every product's rows lie inside the reviews file; it reads no review. A request
finds its product by a binary search over fixed-width keys, slices that product's kept reviews and
joins those it answers with, serialised at publish (each unpacked from its zstd frame: microseconds).
Its cost does not depend on the catalogue's size, and the pages it reads come from the page cache,
shared by every worker process of the host.
"""

from __future__ import annotations

import base64
import mmap
from bisect import bisect_left
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import zstandard

from shared.lake import CuratedVersion
from shared.serving_format import FORMAT, REVIEWS, SUMMARIES, TERMS, products_schema, words


class ProductNotFound(LookupError):
    pass


# Each word of a query costs a lookup and a pass over its postings: a query is refused past this many
# words (after repeats and words another one starts with are dropped); a title search needs a few.
MAX_QUERY_WORDS = 8


class TooManyWords(ValueError):
    pass


def query_words(query: str | None) -> list[str]:
    """The words a search must match, each once: a word that another word of the query starts with adds no
    condition (a product with a word starting with "guitar" has one starting with "gui"), so it is dropped."""
    distinct = set(words(query or ""))
    needed = sorted(w for w in distinct if not any(o != w and o.startswith(w) for o in distinct))
    if len(needed) > MAX_QUERY_WORDS:
        raise TooManyWords(f"{len(needed)} distinct words; at most {MAX_QUERY_WORDS}")
    return needed


class CorruptServingFile(ValueError):
    """A serving file that is not whole, not of this format or of another version: never served."""


def _map(path: Path, advice: int) -> pa.Buffer:
    """The file mapped read-only: Arrow reads it in place, and the pages stay in the shared page cache."""
    with path.open("rb") as f:
        mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    mapped.madvise(advice)
    return pa.py_buffer(mapped)  # the buffer keeps the mapping alive while any array of it lives


def _open(folder: Path, name: str, version: str) -> tuple[pa.Schema, list[pa.RecordBatch], dict[bytes, bytes]]:
    path = folder / f"{name}.arrow"
    # A request reads a few rows of reviews.arrow: readahead would load (and map) the pages around them too.
    advice = mmap.MADV_RANDOM if name in ("reviews", "summaries") else mmap.MADV_NORMAL
    try:
        reader = pa.ipc.open_file(pa.BufferReader(_map(path, advice)))
        batches = [reader.get_batch(i) for i in range(reader.num_record_batches)]
        for batch in batches:
            batch.validate()  # buffers as long as the lengths say: no read outside the file
    except (OSError, ValueError, pa.ArrowException) as exc:  # ValueError: an empty file cannot be mapped
        raise CorruptServingFile(f"{path.name} of version {version}: {exc}") from None
    metadata = reader.schema.metadata or {}
    if metadata.get(b"serving_format") != FORMAT.encode():
        raise CorruptServingFile(f"{path.name}: serving format {metadata.get(b'serving_format')!r}, not {FORMAT}")
    if metadata.get(b"version") != version.encode():
        raise CorruptServingFile(f"{path.name}: of version {metadata.get(b'version')!r}, not {version}")
    return reader.schema.remove_metadata(), batches, metadata


def _single(schema: pa.Schema, batches: list[pa.RecordBatch]) -> pa.RecordBatch:
    """A file written as one record batch: its columns are contiguous arrays."""
    if len(batches) > 1:
        raise CorruptServingFile(f"{len(batches)} record batches where one was written")
    return batches[0] if batches else pa.RecordBatch.from_pylist([], schema=schema)


def _decompressor(dictionary: bytes) -> zstandard.ZstdDecompressor:
    try:
        data = zstandard.ZstdCompressionDict(base64.b64decode(dictionary, validate=True)) if dictionary else None
    except (ValueError, zstandard.ZstdError) as exc:
        raise CorruptServingFile(f"a zstd dictionary is unreadable: {exc}") from None
    return zstandard.ZstdDecompressor(dict_data=data)


def _numbers(batch: pa.RecordBatch, name: str) -> np.ndarray:
    return batch.column(name).to_numpy(zero_copy_only=False)


class _Binaries:
    """An Arrow binary or string array as UTF-8 bytes by position, read from its buffers: no Arrow or Python
    object per value (a pyarrow scalar costs microseconds). Sorted, it is a sequence ``bisect`` searches."""

    def __init__(self, array: pa.Array):
        self._offsets = np.frombuffer(array.buffers()[1], dtype=np.int32)[array.offset : array.offset + len(array) + 1]
        data = array.buffers()[2]
        self._data = memoryview(data) if data is not None else memoryview(b"")

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def __getitem__(self, i: int) -> bytes:
        return bytes(self._data[int(self._offsets[i]) : int(self._offsets[i + 1])])

    def run(self, start: int, count: int) -> list[memoryview]:
        """Values ``start`` to ``start + count``, as views of the mapped file."""
        ends = self._offsets[start : start + count + 1].tolist()
        return [self._data[a:b] for a, b in zip(ends, ends[1:], strict=False)]


def _smallest_distinct(values: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` smallest distinct values, ascending: a partial sort of a few more, not a sort of them all
    (a product appears once per word of it that starts with the query's)."""
    m = 4 * k
    while m < len(values):
        smallest = np.unique(np.partition(values, m)[: m + 1])  # the m + 1 smallest, repeats included
        if len(smallest) >= k:
            return smallest[:k]
        m *= 4
    return np.unique(values)[:k]


def _discusses(rows: pa.Table, topic: str) -> pa.Array:
    """Which rows discuss ``topic``: their single topic is it, or a sentence of theirs is on it."""
    mentions = rows.column("mentions").combine_chunks()
    on_topic = pc.fill_null(pc.equal(pc.list_flatten(mentions).field("topic"), topic), False)
    on_topic = on_topic.to_numpy(zero_copy_only=False)
    hit = np.zeros(rows.num_rows, dtype=bool)
    hit[pc.list_parent_indices(mentions).to_numpy(zero_copy_only=False)[on_topic]] = True
    return pc.or_(pc.fill_null(pc.equal(rows.column("category"), topic), False), pa.array(hit))


class ServingIndex:
    def __init__(self, version: CuratedVersion, folder: Path):
        self.version = version
        schema, self._reviews, metadata = _open(folder, "reviews", version.version)
        if not schema.equals(REVIEWS):
            raise CorruptServingFile(f"reviews.arrow has columns {schema}, not {REVIEWS}")
        self._unpack = _decompressor(metadata.get(b"zstd_dictionary", b"")).decompress
        schema, batches, _ = _open(folder, "products", version.version)
        key = schema.field("key").type if "key" in schema.names else None
        if not isinstance(key, pa.FixedSizeBinaryType) or not schema.equals(products_schema(key.byte_width)):
            raise CorruptServingFile(f"products.arrow has columns {schema}")
        self._products = _single(schema, batches)
        schema, self._summary_batches, metadata = _open(folder, "summaries", version.version)
        if not schema.equals(SUMMARIES):
            raise CorruptServingFile(f"summaries.arrow has columns {schema}, not {SUMMARIES}")
        self._unpack_summary = _decompressor(metadata.get(b"zstd_dictionary", b"")).decompress
        self._summaries = [_Binaries(batch.column("summary")) for batch in self._summary_batches]
        schema, batches, _ = _open(folder, "terms", version.version)
        if not schema.equals(TERMS):
            raise CorruptServingFile(f"terms.arrow has columns {schema}, not {TERMS}")
        terms = _single(schema, batches)

        self._key_width = key.byte_width
        n = self._products.num_rows
        self._keys = np.frombuffer(self._products.column("key").buffers()[1], dtype=f"S{key.byte_width}", count=n)
        self._batch, self._row, self._head, self._rest_row, self._rest = (
            _numbers(self._products, c) for c in ("batch", "row", "head", "rest_row", "rest")
        )
        self._review_count = _numbers(self._products, "review_count")
        self._average = _numbers(self._products, "average_rating")
        self._terms = _Binaries(terms.column("term"))
        self._frames = [_Binaries(batch.column("review")) for batch in self._reviews]
        titles = self._products.column("title")
        self._titles, self._titled = _Binaries(titles), titles.is_valid().to_numpy(zero_copy_only=False)
        self._term_products = _numbers(terms, "product")
        self._check(n)
        self.rows = int(self._review_count.sum())
        self.product_count = n

    def _check(self, n: int) -> None:
        """Everything a request will index with lies inside the files: a bad file fails here, not in a request."""
        lengths = np.array([b.num_rows for b in self._reviews], dtype=np.int64)
        if n and not (
            (self._batch >= 0).all()
            and (self._batch % 2 == 0).all()
            and (self._batch + 1 < len(lengths)).all()
            and (self._row >= 0).all()
            and (self._head >= 1).all()
            and (self._rest_row >= 0).all()
            and (self._rest >= 0).all()
            and (self._row + self._head <= lengths[self._batch]).all()
            and (self._rest_row + self._rest <= lengths[self._batch + 1]).all()
        ):
            raise CorruptServingFile("products.arrow points outside reviews.arrow")
        # Product i's summary: batch batch[i] // 2 of summaries.arrow, row i less the products before that batch.
        per_batch = np.array([b.num_rows for b in self._summary_batches], dtype=np.int64)
        if len(per_batch) != len(lengths) // 2 or not np.array_equal(
            per_batch, np.bincount(self._batch // 2, minlength=len(per_batch))
        ):
            raise CorruptServingFile("summaries.arrow does not hold one summary per product of each range")
        self._summary_first = np.concatenate(([0], np.cumsum(per_batch)))
        if not (self._keys[1:] > self._keys[:-1]).all():
            raise CorruptServingFile("products.arrow is not in strictly ascending product order")
        if len(self._term_products) and not ((self._term_products >= 0) & (self._term_products < n)).all():
            raise CorruptServingFile("terms.arrow names products that do not exist")

    def _title(self, i: int) -> str | None:
        return self._titles[i].decode() if self._titled[i] else None

    # --- GET /reviews/{id}/top ----------------------------------------------------------------

    def _find(self, product_id: str) -> int:
        key = product_id.encode()
        if len(key) <= self._key_width and b"\0" not in key:
            i = int(np.searchsorted(self._keys, key))
            if i < len(self._keys) and self._keys[i] == key:
                return i
        raise ProductNotFound(product_id)

    def top(
        self,
        product_id: str,
        limit: int,
        category: str | None = None,
        min_rating: int | None = None,
        verified_only: bool = False,
        topic: str | None = None,
    ) -> bytes:
        """The JSON body of ``GET /reviews/{product_id}/top``: its kept reviews that pass the filters, in order.
        With ``topic``, those that discuss it (their single topic, or any sentence's), each with the
        sentences on it as ``matches``."""
        i = self._find(product_id)
        batch, head, rest = int(self._batch[i]), int(self._head[i]), int(self._rest[i])
        if category is None and min_rating is None and not verified_only and topic is None:
            # The storefront's page: byte ranges of the mapped file, no Arrow object made (they cost more).
            frames = self._frames[batch].run(int(self._row[i]), min(limit, head))
            if limit > head:
                frames += self._frames[batch + 1].run(int(self._rest_row[i]), min(limit - head, rest))
            reviews = [self._unpack(frame) for frame in frames]
        else:
            rows = pa.Table.from_batches(
                [
                    self._reviews[batch].slice(int(self._row[i]), head),
                    self._reviews[batch + 1].slice(int(self._rest_row[i]), rest),
                ]
            )
            keep = pa.scalar(True)
            if category is not None:
                keep = pc.and_(keep, pc.equal(rows.column("category"), category))
            if min_rating is not None:
                keep = pc.and_(keep, pc.greater_equal(rows.column("rating"), min_rating))
            if verified_only:
                keep = pc.and_(keep, pc.fill_null(rows.column("verified_purchase"), False))
            if topic is not None:
                keep = pc.and_(keep, _discusses(rows, topic))
            found = rows.filter(keep).slice(0, limit)  # a null is not a match
            reviews = [self._unpack(frame) for frame in found.column("review").to_pylist()]
            if topic is not None:
                reviews = [
                    review[:-1] + b',"matches":' + orjson.dumps([m for m in mentions if m.pop("topic") == topic]) + b"}"
                    for review, mentions in zip(reviews, found.column("mentions").to_pylist(), strict=True)
                ]
        head_fields = orjson.dumps(
            {
                "product_id": product_id,
                "product_title": self._title(i),
                "version": self.version.version,
                "count": len(reviews),
            }
        )
        return head_fields[:-1] + b',"reviews":[' + b",".join(reviews) + b"]}"

    # --- GET /products/{id}/summary ----------------------------------------------------------------

    def summary(self, product_id: str) -> bytes:
        """The JSON body of ``GET /products/{product_id}/summary``: what its reviews say, topic by topic."""
        i = self._find(product_id)
        part = int(self._batch[i]) // 2
        said = self._unpack_summary(self._summaries[part][i - int(self._summary_first[part])])
        head_fields = orjson.dumps(
            {"product_id": product_id, "product_title": self._title(i), "version": self.version.version}
        )
        return head_fields[:-1] + b"," + said[1:]

    # --- GET /products --------------------------------------------------------------------------

    def _after(self, cursor: str | None) -> int:
        """The first product after ``cursor`` in id order."""
        if not cursor:
            return 0
        # A longer cursor sorts after every key equal to its first key-width bytes, before any greater one.
        return int(np.searchsorted(self._keys, cursor.encode()[: self._key_width], side="right"))

    def _matching(self, needed: list[str], start: int, wanted: int) -> np.ndarray:
        """The first ``wanted`` products from ``start`` on, ascending, having a word that starts with each query
        word. The work grows with the words' postings, not with the catalogue."""
        postings = []
        for word in needed:
            prefix = word.encode()
            lo = bisect_left(self._terms, prefix)
            hi = bisect_left(self._terms, prefix + b"\xff", lo)  # 0xff never occurs in UTF-8
            postings.append(self._term_products[lo:hi])
        postings.sort(key=len)
        found = postings[0][postings[0] >= start]
        for other in postings[1:]:  # keep the rarest word's products that the other words have too
            has = np.zeros(self.product_count, dtype=bool)
            has[other] = True
            found = found[has[found]]
        return _smallest_distinct(found, wanted)

    def _summary(self, i: int) -> dict:
        return {
            "product_id": self._products.column("product_id")[i].as_py(),
            "title": self._title(i),
            "category": self._products.column("category")[i].as_py(),
            "review_count": int(self._review_count[i]),
            "average_rating": round(float(self._average[i]), 3),
        }

    def search(self, query: str | None, limit: int, cursor: str | None) -> tuple[list[dict], str | None]:
        """Products after ``cursor`` in product-id order; with a query, those having, for each word of the
        query, a word of their id or title that starts with it. The cost grows with the matches, not the catalogue."""
        start = self._after(cursor)
        needed = query_words(query)
        if needed:
            hits = self._matching(needed, start, limit + 1)
        else:  # no word to look for (none, or punctuation only): every product
            hits = np.arange(start, min(start + limit + 1, self.product_count))
        page = [self._summary(int(i)) for i in hits[:limit]]
        return page, page[-1]["product_id"] if len(hits) > limit else None

    def age_seconds(self, now: datetime | None = None) -> float:
        published = datetime.fromisoformat(self.version.published_at)
        return ((now or datetime.now(UTC)) - published).total_seconds()
