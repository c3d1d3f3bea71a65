"""Curated versions: the ones kept, the one "latest" names, a rollback to another; the API follows "latest"
within seconds.

A version is served from its serving files (shared/curated/serving.py): a rollback to a version
that has none (published before they existed) builds them from its curated file first.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import pyarrow.parquet as pq

from shared.curated import serving
from shared.history import History
from shared.history.audit import Actor
from shared.lake import CURATED_CHANNEL, CuratedVersion, Lake, curated_key, known_key


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
    return VersionInfo(version, key, lake.head(key).size_bytes, version == served)


def _served(lake: Lake) -> str | None:
    latest = lake.latest()
    return None if latest is None else latest.version


def list_versions(lake: Lake) -> list[VersionInfo]:
    """Every curated file kept, newest first, with the one the API serves marked."""
    served = _served(lake)
    return [_info(lake, version, served) for version in reversed(lake.curated_versions())]


def announce(redis, version: CuratedVersion) -> None:
    """Tell the API a new version is latest; it also polls the pointer, so a lost message only delays."""
    redis.publish(CURATED_CHANNEL, version.to_json())


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
    head = lake.head(key)
    # publish records the rows on the object's head; only an older file is read for its footer
    rows = head.metadata.get("rows") or pq.read_metadata(io.BytesIO(lake.get_bytes(key))).num_rows
    # published_at stays the file's own time: the version's age is what alerting looks at.
    version = CuratedVersion(to, key, int(rows), head.size_bytes, head.last_modified.isoformat())
    lake.set_latest(version)
    return version


def operator_rollback(
    lake: Lake, redis, history: History, operator: Actor, to: str | None, reviews_kept: int = serving.REVIEWS_KEPT
) -> CuratedVersion:
    """An operator's rollback (CLI, the publish worker for the API): ``rollback``, the API told, and one record
    in the audit trail."""
    with history.audited(operator, "rollback", to, refusals=(UnknownVersion,)) as outcome:
        version = rollback(lake, to, reviews_kept)
        announce(redis, version)
        outcome.target, outcome.text = version.version, f"done: latest is {version.version}"
    return version


def prune(lake: Lake, keep: int, protect: str) -> list[str]:
    """Delete curated versions beyond the newest ``keep``, never the one ``latest`` names."""
    versions = lake.curated_versions()
    doomed = [v for v in versions[: max(0, len(versions) - keep)] if v != protect]
    lake.delete([curated_key(v) for v in doomed] + [known_key(v) for v in doomed])
    serving.prune(lake, kept=set(versions) - set(doomed))
    return doomed


def served_and_previous(lake: Lake) -> tuple[VersionInfo, VersionInfo] | None:
    """The version served and the one before it (what its size is judged against), or None. Read at every
    metrics scrape: two heads, however many versions are kept."""
    served, versions = _served(lake), lake.curated_versions()  # oldest first
    i = versions.index(served) if served in versions else 0
    if i == 0:
        return None
    return _info(lake, versions[i], served), _info(lake, versions[i - 1], served)
