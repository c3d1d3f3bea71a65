"""How work flows between the stages: what crosses the broker, which task does each stage's work,
and which stage's output each batch reads.

extract -> archive + transform -> classify -> publish. The sweep (lost messages) and an operator's
retry (failed batches) both re-announce work from this one map. Light on imports on purpose: the
API imports it through shared.recovery, and must not load the pipeline's drivers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

from celery import Celery

from shared.history import History
from shared.history.audit import Actor
from shared.history.runs import RunAlreadyActive
from shared.stages import Stage


@dataclass(frozen=True)
class BatchRef:
    """All that crosses the broker: which run, which batch, which object to read."""

    run_id: str
    batch: int
    key: str

    def as_message(self) -> dict:
        return asdict(self)


# A batch whose task may still be on its way: the sweep re-announces it if its message was lost, a retry waits.
# lost: its worker died mid-batch, and the lease check announced it again (shared.leases).
IN_FLIGHT = ("running", "retrying", "lost")
# A batch stage -> the stage whose output (the same batch number) it reads.
INPUT = {Stage.ARCHIVE: Stage.EXTRACT, Stage.TRANSFORM: Stage.EXTRACT, Stage.CLASSIFY: Stage.TRANSFORM}
# A stage -> the batch stages that read its output.
DOWNSTREAM = {stage: tuple(s for s, source in INPUT.items() if source is stage) for stage in Stage}

# How a caller hands a message to the broker: the pipeline's Celery app (shared.tasks.send), or a test's outbox.
Send = Callable[[str, BatchRef], None]


def sender(celery: Celery) -> Send:
    """How ``celery`` hands a message to the broker: the reference as JSON, to a task by its name."""

    def send(task_name: str, ref: BatchRef) -> None:
        celery.send_task(task_name, args=[ref.as_message()])

    return send


def start_run(history: History, send: Send, trigger: str, params: dict) -> str:
    """Create a run and announce its extraction: how beat and the CLI start a run. The API, which has no broker,
    requests one instead; shared/run_requests.py announces its extraction."""
    run_id = history.create_run(trigger, params)
    send(Stage.EXTRACT.task, BatchRef(run_id, 0, ""))
    return run_id


def trigger_run(history: History, send: Send | None, operator: Actor, params: dict) -> str:
    """An operator's trigger, recorded once in the audit trail: ``start_run`` from the CLI, or, with no ``send``
    (the API has no broker), a run requested for the extract worker to start (shared/run_requests.py)."""
    with history.audited(operator, "trigger", refusals=(RunAlreadyActive,)) as outcome:
        outcome.detail = dict(params)
        if send is None:
            outcome.target = run_id = history.request_run(params)
        else:
            outcome.target = run_id = start_run(history, send, operator.via, params)
        outcome.text = "accepted: queued"
    return run_id
