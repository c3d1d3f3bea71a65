"""How work flows between the stages: what crosses the broker, which task does each stage's work,
and which stage's output each batch reads.

extract -> archive + transform -> classify -> publish. The sweep (lost messages) and an operator's
retry (failed batches) both re-announce work from this one map. Light on imports on purpose: the
API uses it, and must not load the pipeline's drivers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from shared.history import Stage


@dataclass(frozen=True)
class BatchRef:
    """All that crosses the broker: which run, which batch, which object to read."""

    run_id: str
    batch: int
    key: str

    def as_message(self) -> dict:
        return asdict(self)


# The task that does a stage's work. extract.run and publish.run are run-level (batch 0).
TASK = {
    Stage.EXTRACT: "extract.run",
    Stage.ARCHIVE: "archive.batch",
    Stage.TRANSFORM: "transform.batch",
    Stage.CLASSIFY: "classify.batch",
    Stage.PUBLISH: "publish.run",
}
# A batch stage -> the stage whose output (the same batch number) it reads.
INPUT = {Stage.ARCHIVE: Stage.EXTRACT, Stage.TRANSFORM: Stage.EXTRACT, Stage.CLASSIFY: Stage.TRANSFORM}
# A stage -> the batch stages that read its output.
DOWNSTREAM = {stage: tuple(s for s, source in INPUT.items() if source is stage) for stage in Stage}
