"""Retention of the run zones: a run's objects in raw/, rejects/, cleaned/ and scored/ (plain buyer ids and
texts) are deleted ``LAKE_RETENTION_DAYS`` after the run started; curated/ is never touched here (its
versions are pruned by count when a run publishes, shared/curated/versions.py).

A run's age is read from its id, which is its UTC start time (``20261204T121004Z-abc123``, see
``shared.history.runs.new_run_id``), not from the objects' timestamps: a retried batch rewritten last week
belongs to a run as old as its first. A folder whose name is not such an id is kept, as nothing can date it.

What reads the run zones reads only its own run's objects (the extractor writes them; transform and
classify read their batch; publish reads the run's raw batches, live ids and scored batches, and the base
version's *curated* file): so only a run still queued or running is kept past its age, whatever it builds
upon. A failed run older than the retention can no longer be retried; a later run supersedes it anyway.

Listing goes zone by zone over the run folders, oldest first, and stops at the first run young enough to
keep: its cost grows with what expires, not with what the lake holds. Deletion is batched (1,000 keys a
DeleteObjects call). deploy/s3-lifecycle.json states the same rule for the bucket itself.

After expiring, the task measures the lake (objects and bytes per zone, the oldest run left) into Redis,
where the publish worker's gauges read it at each scrape: a listing of the whole bucket once a day, not
at every scrape.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta

import structlog

from shared.history import History
from shared.lake import RUN_ZONES, ZONES, Lake, run_prefix

log = structlog.get_logger()

MEASURE_KEY = "reviews:lake:measure"
# The oldest run may be LAKE_RETENTION_DAYS plus a day old just before a daily expiry; one more day
# (an expiry late or failed once) and it is overdue: the alert LakeRetentionOverdue, the doctor's lake_retention.
OVERDUE_AFTER_DAYS = 2
ACTIVE = ("queued", "running")


def run_started(run_id: str) -> datetime | None:
    """When the run started, from its id; None when the id is not a run id."""
    try:
        return datetime.strptime(run_id.partition("-")[0], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def _runs(lake: Lake, zone: str):
    """(run id, its folder, its start) of each dated run folder in ``zone``, oldest first."""
    head = run_prefix(zone, "")[:-1]  # "<zone>/run="
    for folder in lake.folders(head):
        run_id = folder[len(head) : -1]
        started = run_started(run_id)
        if started is not None:
            yield run_id, folder, started


@dataclass
class ZoneExpiry:
    runs: list[str] = field(default_factory=list)
    objects: int = 0
    bytes: int = 0


@dataclass(frozen=True)
class Expiry:
    cutoff: datetime  # runs that started before it are expired
    zones: dict[str, ZoneExpiry]
    kept_active: list[str]  # runs old enough to expire, kept because they are queued or running
    dry_run: bool

    def objects(self) -> dict[str, int]:
        return {zone: e.objects for zone, e in self.zones.items()}


def expire(lake: Lake, history: History, days: int, dry_run: bool = False, now: datetime | None = None) -> Expiry:
    """Delete (``dry_run``: only list) the run-zone objects of the runs that started more than ``days`` ago."""
    cutoff = (now or datetime.now(UTC)) - timedelta(days=days)
    active: dict[str, bool] = {}  # run id -> queued or running, asked once a run

    def is_active(run_id: str) -> bool:
        if run_id not in active:
            run = history.get_run(run_id)
            active[run_id] = run is not None and run["status"] in ACTIVE
        return active[run_id]

    zones = {zone: ZoneExpiry() for zone in RUN_ZONES}
    for zone, expired in zones.items():
        for run_id, folder, started in _runs(lake, zone):
            if started >= cutoff:  # run ids sort by start: every later folder is younger still
                break
            if is_active(run_id):
                continue
            sizes = lake.sizes(folder)
            if not dry_run:
                lake.delete(list(sizes))
            expired.runs.append(run_id)
            expired.objects += len(sizes)
            expired.bytes += sum(sizes.values())
        log.info(
            "lake_expired",
            zone=zone,
            runs=len(expired.runs),
            objects=expired.objects,
            bytes=expired.bytes,
            cutoff=cutoff.isoformat(),
            dry_run=dry_run,
        )
    kept = sorted(run_id for run_id, yes in active.items() if yes)
    for run_id in kept:
        log.warning("lake_expiry_kept_active_run", run_id=run_id)
    return Expiry(cutoff, zones, kept, dry_run)


# --- the lake's measure, for the publish worker's gauges -------------------------------------------------


@dataclass(frozen=True)
class LakeMeasure:
    zones: dict[str, tuple[int, int]]  # zone -> (objects, bytes)
    oldest_run: float | None  # start of the oldest run left in the run zones (Unix time); None: none left
    measured_at: float


def measure(lake: Lake) -> LakeMeasure:
    """Objects and bytes per zone (a listing of the whole bucket), and the oldest run the run zones hold."""
    firsts = [next((started for _, _, started in _runs(lake, zone)), None) for zone in RUN_ZONES]
    oldest = min((f for f in firsts if f is not None), default=None)
    return LakeMeasure(
        {zone: lake.usage(f"{zone}/") for zone in ZONES},
        None if oldest is None else oldest.timestamp(),
        time.time(),
    )


def record(redis, lake_measure: LakeMeasure) -> None:
    redis.set(MEASURE_KEY, json.dumps(asdict(lake_measure)))


def last_measure(redis) -> LakeMeasure | None:
    """What the last expiry measured; None before the first."""
    data = redis.get(MEASURE_KEY)
    if data is None:
        return None
    fields = json.loads(data)
    return LakeMeasure(
        {zone: tuple(v) for zone, v in fields["zones"].items()}, fields["oldest_run"], fields["measured_at"]
    )


def expire_and_measure(lake: Lake, history: History, redis, days: int) -> Expiry:
    """Beat's daily task and ``reviews lake expire``: expire, then measure what is left for the gauges."""
    expiry = expire(lake, history, days)
    record(redis, measure(lake))
    return expiry
