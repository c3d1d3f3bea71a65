"""The lake I/O and (de)serialisation a stage does around its work, replayed on a finished run's objects.

Each replay repeats, from the benchmark's process, exactly the reads and writes one batch task
does (S3 get + Parquet decode, encode + S3 put, rows to documents), without the work itself:
set against the batch's busy time in the run history, it is the stage's non-work share.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pyarrow as pa

from services.archiver.archive import to_documents
from shared.history import History
from shared.lake import Lake
from shared.schemas import CLEANED, RAW, SCORED
from shared.stages import Stage

SCRATCH = "bench/scratch.parquet"


def _archive(lake: Lake, batch: dict) -> float:
    start = time.perf_counter()
    to_documents(lake.get_table(batch["input_key"], RAW), batch["run_id"], datetime.now(UTC))
    return time.perf_counter() - start


def _transform(lake: Lake, batch: dict) -> float:
    cleaned = lake.get_table(batch["output_key"])
    start = time.perf_counter()
    lake.get_table(batch["input_key"], RAW)
    lake.put_table(SCRATCH, cleaned)
    return time.perf_counter() - start


def _classify(lake: Lake, batch: dict) -> float:
    scored = lake.get_table(batch["output_key"], SCORED).to_pandas()
    start = time.perf_counter()
    lake.get_table(batch["input_key"], CLEANED).to_pandas()
    lake.put_table(SCRATCH, pa.Table.from_pandas(scored[SCORED.names], schema=SCORED, preserve_index=False))
    return time.perf_counter() - start


REPLAYS: dict[Stage, Callable[[Lake, dict], float]] = {
    Stage.ARCHIVE: _archive,
    Stage.TRANSFORM: _transform,
    Stage.CLASSIFY: _classify,
}


def io_per_batch_s(lake: Lake, history: History, run_id: str, samples: int = 5) -> dict[Stage, float]:
    """Median I/O + (de)serialisation seconds per batch, over ``samples`` batches spread across the run."""
    result = {}
    for stage, replay in REPLAYS.items():
        batches = [b for b in history.batches(run_id, stage) if b["status"] == "succeeded"]
        step = max(1, len(batches) // samples)
        result[stage] = statistics.median(replay(lake, b) for b in batches[::step][:samples])
    lake.delete([SCRATCH])
    return result
