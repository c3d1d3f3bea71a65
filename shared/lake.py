"""The data lake on S3: where each zone's objects live, and reading/writing them.

Keys are derived from (run id, batch number) only, so every stage is idempotent:
a redelivered task rewrites the same object instead of adding a second one.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

LATEST_KEY = "curated/LATEST.json"
CURATED_CHANNEL = "reviews:curated"  # Redis pub/sub: the publisher announces, the API reloads
CURATED_PREFIX = "curated/review_curated_"
KNOWN_PREFIX = "curated/known/"


# The lake's zones, in the order data flows through them.
ZONES = ("raw", "rejects", "cleaned", "scored", "curated")
# The zones that hold one folder per run, ``<zone>/run=<id>/``: kept LAKE_RETENTION_DAYS (shared/retention.py).
RUN_ZONES = ("raw", "rejects", "cleaned", "scored")


def run_prefix(zone: str, run_id: str) -> str:
    return f"{zone}/run={run_id}/"


def raw_key(run_id: str, batch: int) -> str:
    return f"{run_prefix('raw', run_id)}batch={batch:05d}.parquet"


def live_ids_key(run_id: str) -> str:
    """Every review id in the source, in the run's snapshot: what an incremental run may keep."""
    return f"{run_prefix('raw', run_id)}live_ids.parquet"


def cleaned_key(run_id: str, batch: int) -> str:
    return f"{run_prefix('cleaned', run_id)}batch={batch:05d}.parquet"


def rejects_key(run_id: str, batch: int) -> str:
    return f"{run_prefix('rejects', run_id)}batch={batch:05d}.csv"


def scored_key(run_id: str, batch: int) -> str:
    return f"{run_prefix('scored', run_id)}batch={batch:05d}.parquet"


def curated_key(run_id: str) -> str:
    return f"{CURATED_PREFIX}{run_id}.parquet"


def known_key(run_id: str) -> str:
    """The keys of the reviews a curated version holds outputs for (shared/known.py)."""
    return f"{KNOWN_PREFIX}{run_id}.u64"


class DeleteRefused(Exception):
    """S3 refused to delete some of the objects a multi-object delete named."""


@dataclass(frozen=True)
class CuratedVersion:
    """What the "latest" pointer says: the API serves ``key``."""

    version: str  # the run id that produced it
    key: str
    rows: int
    size_bytes: int
    published_at: str

    def to_json(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def from_json(cls, data: bytes) -> CuratedVersion:
        return cls(**json.loads(data))


@dataclass(frozen=True)
class ObjectHead:
    size_bytes: int
    last_modified: datetime
    metadata: dict[str, str]  # what the writer put on the object's head (put_file's ``metadata``)


class RangedObject(io.RawIOBase):
    """An object read by ranged GETs, as a seekable file: a Parquet reader given it fetches the footer and the
    column chunks it reads, never the whole object. ``bytes_read`` counts what came over the wire."""

    def __init__(self, s3, bucket: str, key: str):
        self._s3, self._bucket, self._key = s3, bucket, key
        self._size = s3.head_object(Bucket=bucket, Key=key)["ContentLength"]
        self._position = 0
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        start = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = start + offset
        return self._position

    def readinto(self, buffer) -> int:
        wanted = min(len(buffer), self._size - self._position)
        if wanted <= 0:
            return 0
        last = self._position + wanted - 1
        body = self._s3.get_object(Bucket=self._bucket, Key=self._key, Range=f"bytes={self._position}-{last}")
        data = body["Body"].read()
        buffer[: len(data)] = data
        self._position += len(data)
        self.bytes_read += len(data)
        return len(data)


class Lake:
    """One bucket, through a boto3 S3 client made once per process and handed in."""

    def __init__(self, s3, bucket: str):
        self.s3 = s3
        self.bucket = bucket

    def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)

    def get_bytes(self, key: str) -> bytes:
        return self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def exists(self, key: str) -> bool:
        try:
            self.s3.head_object(Bucket=self.bucket, Key=key)
        except self.s3.exceptions.ClientError as exc:
            if exc.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def head(self, key: str) -> ObjectHead:
        head = self.s3.head_object(Bucket=self.bucket, Key=key)
        return ObjectHead(head["ContentLength"], head["LastModified"], head.get("Metadata", {}))

    def put_table(self, key: str, table: pa.Table) -> int:
        """Write a table as zstd Parquet; returns the object's size."""
        buffer = io.BytesIO()
        pq.write_table(table, buffer, compression="zstd")
        data = buffer.getvalue()
        self.put_bytes(key, data, "application/vnd.apache.parquet")
        return len(data)

    def get_table(self, key: str, schema: pa.Schema | None = None, columns: list[str] | None = None) -> pa.Table:
        table = pq.read_table(io.BytesIO(self.get_bytes(key)), columns=columns)
        return table.select(schema.names).cast(schema) if schema is not None else table

    def ranged(self, key: str) -> RangedObject:
        """The object as a seekable file read by ranged GETs (what a reader of a few columns wants)."""
        return RangedObject(self.s3, self.bucket, key)

    def put_file(
        self,
        key: str,
        path: Path,
        metadata: dict[str, str] | None = None,
        content_type: str = "application/vnd.apache.parquet",
    ) -> None:
        """Upload a local file (in parts when it is large); ``metadata`` rides on the object's head."""
        extra = {"ContentType": content_type, "Metadata": metadata or {}}
        self.s3.upload_file(str(path), self.bucket, key, ExtraArgs=extra)

    def get_file(self, key: str, path: Path) -> None:
        """Download an object to a local file (in parts when it is large), never whole into memory."""
        self.s3.download_file(self.bucket, key, str(path))

    def sizes(self, prefix: str) -> dict[str, int]:
        """Every object under ``prefix``, with its size in bytes."""
        sizes: dict[str, int] = {}
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            sizes.update((obj["Key"], obj["Size"]) for obj in page.get("Contents", []))
        return sizes

    def list_keys(self, prefix: str) -> list[str]:
        return sorted(self.sizes(prefix))

    def usage(self, prefix: str) -> tuple[int, int]:
        """How many objects, and how many bytes, lie under ``prefix``."""
        sizes = self.sizes(prefix)
        return len(sizes), sum(sizes.values())

    def folders(self, prefix: str) -> Iterator[str]:
        """The folders right under ``prefix`` (``<prefix><name>/``), in key order, a page at a time: a caller
        that stops early lists no further."""
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix, Delimiter="/")
        for page in pages:
            yield from (p["Prefix"] for p in page.get("CommonPrefixes", []))

    def delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):
            chunk = keys[start : start + 1000]
            response = self.s3.delete_objects(Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in chunk]})
            # A multi-object delete answers 200 and refuses key by key: a refused key must not pass for deleted.
            if errors := response.get("Errors"):
                first = errors[0]
                raise DeleteRefused(
                    f"{len(errors)} of {len(chunk)} objects not deleted: {first['Code']} on {first['Key']}"
                )

    # --- the curated "latest" pointer ----------------------------------------------------------

    def latest(self) -> CuratedVersion | None:
        try:
            return CuratedVersion.from_json(self.get_bytes(LATEST_KEY))
        except self.s3.exceptions.NoSuchKey:
            return None

    def set_latest(self, version: CuratedVersion) -> None:
        # A single PUT replaces an S3 object atomically: readers see the old pointer or the new.
        self.put_bytes(LATEST_KEY, version.to_json(), "application/json")

    def curated_versions(self) -> list[str]:
        """Run ids of the curated files present, oldest first (run ids sort by time)."""
        return [k[len(CURATED_PREFIX) : -len(".parquet")] for k in self.list_keys(CURATED_PREFIX)]
