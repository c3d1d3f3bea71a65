"""A run's plan: how it reads the source (everything, or what changed since a watermark) and as of
when it scores. The extractor makes the plan, the run history records it, the publisher reads it back."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import NamedTuple


class Watermark(NamedTuple):
    """A position in the source's change order: rows are read by (updated_at, review_id)."""

    updated_at: datetime
    review_id: int


BEGINNING = Watermark(datetime(1, 1, 1, tzinfo=UTC), 0)


@dataclass(frozen=True)
class Plan:
    """How a run reads the source: everything, or what changed since its base version's watermark."""

    mode: str  # "full" or "incremental"
    reason: str
    base_version: str | None = None
    since: Watermark | None = None


def plan_of(run: dict) -> Plan | None:
    """The plan a run recorded, or None before its extraction started."""
    if run["mode"] is None:
        return None
    since = Watermark(run["watermark_from"], run["watermark_from_id"]) if run["watermark_from"] else None
    return Plan(run["mode"], run["mode_reason"], run["base_version"], since)


def watermark_of(run: dict) -> Watermark | None:
    """Where the run after this one reads from: set once its extraction completed."""
    return Watermark(run["watermark_to"], run["watermark_to_id"]) if run["watermark_to"] else None


def as_of(run: dict) -> datetime:
    """The moment a run scores as of (ages, recency): the start of its logical day, so that two runs
    of the same day over the same source publish the same content."""
    return datetime.combine(run["logical_date"], time.min, tzinfo=UTC)
