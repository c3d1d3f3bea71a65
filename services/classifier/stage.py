"""The classify stage's work on one batch: read cleaned, score, write scored."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa

from services.classifier.scoring import score_batch
from shared.lake import Lake, scored_key
from shared.schemas import CLEANED, SCORED
from shared.settings import Settings


def run(
    lake: Lake, classifier, cache, settings: Settings, run_id: str, batch: int, cleaned_key: str
) -> tuple[str, int]:
    """Score one stored cleaned batch; returns (scored key, rows)."""
    cleaned = lake.get_table(cleaned_key, CLEANED).to_pandas()
    scored = score_batch(cleaned, classifier, settings, now=datetime.now(UTC), cache=cache)
    key = scored_key(run_id, batch)
    lake.put_table(key, pa.Table.from_pandas(scored[SCORED.names], schema=SCORED, preserve_index=False))
    return key, len(scored)
