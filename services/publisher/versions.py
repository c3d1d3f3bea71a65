"""Curated versions an operator can list and roll back to; the API follows "latest" within seconds.

A version is served from its serving files (services/publisher/serving.py): a rollback to a version
that has none (published before they existed) builds them from its curated file first.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import pyarrow.parquet as pq

from services.publisher import serving
from shared.lake import CuratedVersion, Lake, curated_key


class UnknownVersion(LookupError):
    pass


@dataclass(frozen=True)
class VersionInfo:
    version: str
    key: str
    size_bytes: int
    latest: bool


def _info(lake: Lake, version: str, served: str | None) -> VersionInfo:
    key = curated_key(version)
    head = lake.s3.head_object(Bucket=lake.bucket, Key=key)
    return VersionInfo(version, key, head["ContentLength"], version == served)


def _served(lake: Lake) -> str | None:
    latest = lake.latest()
    return None if latest is None else latest.version


def list_versions(lake: Lake) -> list[VersionInfo]:
    """Every curated file kept, newest first, with the one the API serves marked."""
    served = _served(lake)
    return [_info(lake, version, served) for version in reversed(lake.curated_versions())]


def rollback(lake: Lake, to: str | None = None, reviews_kept: int = serving.REVIEWS_KEPT) -> CuratedVersion:
    """Point "latest" at ``to`` (default: the version before the one served), its serving files in the lake."""
    versions = lake.curated_versions()
    latest = lake.latest()
    if to is None:
        older = [v for v in versions if latest is None or v < latest.version]
        if not older:
            raise UnknownVersion("there is no older curated version to roll back to")
        to = older[-1]
    if to not in versions:
        raise UnknownVersion(f"no curated version {to!r}; kept: {', '.join(reversed(versions)) or 'none'}")
    key = curated_key(to)
    serving.ensure(lake, to, reviews_kept)
    head = lake.s3.head_object(Bucket=lake.bucket, Key=key)
    # publish records the rows on the object's head; only an older file is read for its footer
    rows = head.get("Metadata", {}).get("rows") or pq.read_metadata(io.BytesIO(lake.get_bytes(key))).num_rows
    # published_at stays the file's own time: the version's age is what alerting looks at.
    version = CuratedVersion(to, key, int(rows), head["ContentLength"], head["LastModified"].isoformat())
    lake.set_latest(version)
    return version


def served_and_previous(lake: Lake) -> tuple[VersionInfo, VersionInfo] | None:
    """The version served and the one before it (what its size is judged against), or None. Read at every
    metrics scrape: two heads, however many versions are kept."""
    served, versions = _served(lake), lake.curated_versions()  # oldest first
    i = versions.index(served) if served in versions else 0
    if i == 0:
        return None
    return _info(lake, versions[i], served), _info(lake, versions[i - 1], served)
