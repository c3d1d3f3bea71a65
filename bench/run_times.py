"""Per-stage wall, busy and queue time of one pipeline run, read from the run history.

Stages overlap (a batch is classified while the next one is transformed), so a stage's *wall*
is its own span (first batch started to last batch finished), its *busy* time the sum of its
batches' durations, and its *queue* time how long its workers sat idle while a batch was
already waiting for them: broker delivery and bookkeeping, the overhead between two batches.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from shared.history import History
from shared.stages import Stage

# The stage whose finished batch makes a batch ready for this one.
UPSTREAM = {Stage.ARCHIVE: Stage.EXTRACT, Stage.TRANSFORM: Stage.EXTRACT, Stage.CLASSIFY: Stage.TRANSFORM}


@dataclass(frozen=True)
class StageTimes:
    batches: int
    started: datetime
    finished: datetime
    busy_s: float
    queue_s: float

    @property
    def wall_s(self) -> float:
        return (self.finished - self.started).total_seconds()

    @property
    def queue_share(self) -> float:
        """Queue time as a share of the stage's time on its workers (busy + waiting on the queue)."""
        return self.queue_s / (self.busy_s + self.queue_s) if self.busy_s + self.queue_s else 0.0


@dataclass(frozen=True)
class RunTimes:
    run_id: str
    source_rows: int
    curated_rows: int
    started: datetime
    finished: datetime  # when publish switched "latest": what the storefront waits for
    stages: dict[Stage, StageTimes]

    @property
    def end_to_end_s(self) -> float:
        return (self.finished - self.started).total_seconds()

    def share(self, stage: Stage) -> float:
        """The stage's busy time over the run's end-to-end time: how much of the run it occupies."""
        return self.stages[stage].busy_s / self.end_to_end_s


def _queue_s(batches: list[dict], ready: dict[int, datetime]) -> float:
    """Idle time of each worker between its batches while the next batch was already ready."""
    idle = 0.0
    previous: dict[str, datetime] = {}
    for b in sorted(batches, key=lambda b: b["started_at"]):
        # Waiting from when both the worker was free and the batch was ready, whichever came later.
        since = [t for t in (previous.get(b["worker"]), ready.get(b["batch_no"])) if t is not None]
        if since:
            idle += max(0.0, (b["started_at"] - max(since)).total_seconds())
        previous[b["worker"]] = b["finished_at"]
    return idle


def _stage_times(batches: list[dict], ready: dict[int, datetime]) -> StageTimes:
    return StageTimes(
        batches=len(batches),
        started=min(b["started_at"] for b in batches),
        finished=max(b["finished_at"] for b in batches),
        busy_s=sum((b["finished_at"] - b["started_at"]).total_seconds() for b in batches),
        queue_s=_queue_s(batches, ready),
    )


def run_times(history: History, run_id: str) -> RunTimes:
    run = history.get_run(run_id)
    by_stage: dict[Stage, list[dict]] = defaultdict(list)
    for b in history.batches(run_id):
        if b["status"] == "succeeded":
            by_stage[Stage(b["stage"])].append(b)
    finished = {stage: {b["batch_no"]: b["finished_at"] for b in rows} for stage, rows in by_stage.items()}
    stages: dict[Stage, StageTimes] = {}  # a stage with no batch (a run that read no change) has none
    if by_stage[Stage.EXTRACT]:
        # Extract is one task writing every batch: from the run's start to its last batch, all busy.
        extract_end = max(finished[Stage.EXTRACT].values())
        stages[Stage.EXTRACT] = StageTimes(
            len(by_stage[Stage.EXTRACT]),
            run["started_at"],
            extract_end,
            (extract_end - run["started_at"]).total_seconds(),
            0.0,
        )
    for stage, upstream in UPSTREAM.items():
        if by_stage[stage]:
            stages[stage] = _stage_times(by_stage[stage], finished[upstream])
    # Publish is ready once the last batch is classified (the completion barrier), or at once.
    ready = max(finished.get(Stage.CLASSIFY, {}).values(), default=run["started_at"])
    stages[Stage.PUBLISH] = _stage_times(by_stage[Stage.PUBLISH], {0: ready})
    return RunTimes(run_id, run["source_rows"], run["curated_rows"], run["started_at"], run["finished_at"], stages)
