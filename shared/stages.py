"""The pipeline's stages: one enum that names each stage's queue, tasks and worker module.

Every name the broker, Celery's routes, beat and the local stack use is derived from here. A task
is named ``<stage>.<what>`` and routed to its stage's queue by that prefix, so a stage's worker
runs exactly the tasks of its own module and no name is spelled twice.
"""

from __future__ import annotations

from enum import StrEnum


class Stage(StrEnum):
    EXTRACT = "extract"
    ARCHIVE = "archive"
    TRANSFORM = "transform"
    CLASSIFY = "classify"
    PUBLISH = "publish"

    @property
    def queue(self) -> str:
        return self.value

    @property
    def run_level(self) -> bool:
        """Whether the stage's work is one task a run (recorded as batch 0) rather than one a batch."""
        return self in (Stage.EXTRACT, Stage.PUBLISH)

    @property
    def task(self) -> str:
        """The task that does the stage's work."""
        return self.task_named("run" if self.run_level else "batch")

    def batch_name(self, n: int) -> str:
        """One of its batches as a person reads it: "classify batch 3", or "publish" for a run-level stage's."""
        return self.value if n == 0 and self.run_level else f"{self.value} batch {n}"

    def task_named(self, what: str) -> str:
        return f"{self.value}.{what}"

    @property
    def worker_module(self) -> str:
        """The module a worker of this stage imports (``celery worker --include``): its tasks, nothing else."""
        return f"services.{_SERVICE[self]}.tasks"


_SERVICE = {
    Stage.EXTRACT: "extractor",
    Stage.ARCHIVE: "archiver",
    Stage.TRANSFORM: "transformer",
    Stage.CLASSIFY: "classifier",
    Stage.PUBLISH: "publisher",
}

# Beat's daily trigger: starts a run the way the CLI and the API do (shared.flow.start_run).
START_TASK = Stage.EXTRACT.task_named("start")
# Beat's repair of stalled runs (shared.recovery); on the publish worker, light and always up at a run's end.
SWEEP_TASK = Stage.PUBLISH.task_named("sweep")
# Beat's lease check (shared.recovery.reclaim), every few seconds, beside the sweep.
RECLAIM_TASK = Stage.PUBLISH.task_named("reclaim")
# Beat's daily retention of the run zones (shared.retention), on the publish worker beside the sweep.
EXPIRE_TASK = Stage.PUBLISH.task_named("expire")
