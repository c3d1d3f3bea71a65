"""Recovery: the ways a run that stopped is set moving again, from one map of the flow.

**The lease check** (beat, every ``LEASE_CHECK_EVERY_S``) announces again each batch whose worker died
mid-batch: its lease ran out (``shared.leases``). A worker killed mid-batch costs ``LEASE_S`` +
``LEASE_CHECK_EVERY_S`` at most before its batch is announced again, whatever the rest of the run does.

**The sweep** (beat, every ``SWEEP_EVERY_S``) finds runs that stopped moving and re-announces what
they wait for. Messages can be lost between a database commit and a broker send (a worker killed in
between, Redis restarted without the message). Every stage is idempotent, so re-announcing a batch
whose next step never ran is always safe.

**An operator's retry** of a failed run (``reviews retry``, ``POST /jobs/{id}/retry``), as Airflow's
"clear". The CLI announces at once; the API, which has no broker, leaves a request the extract worker
claims and announces the same way (``shared/run_requests.py``).

The run's failed batches (a permanent error, automatic retries used up, or dead-lettered after
deliveries that kept dying) are cleared and announced again; what reads their output follows
through the usual chain (extract -> archive + transform -> classify -> publish), and every batch
that succeeded is kept. The run is running again, so the completion barrier publishes it once,
when its last batch is classified. The run keeps the plan it recorded at its first extraction
(mode, base version, watermarks): a resumed extraction reads on from where it stopped.

An operator may also name a batch that succeeded (``--stage transform --batch 3``): it is done
again with everything downstream of it, for a bad intermediate file the stage after it choked on.
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from shared.flow import DOWNSTREAM, IN_FLIGHT, INPUT, BatchRef, Send
from shared.history import History
from shared.history.audit import Actor
from shared.history.runs import RunAlreadyActive, RunNotFound
from shared.stages import Stage

log = structlog.get_logger()


class RetryRefused(Exception):
    """A run an operator may not retry (yet), with the reason to show them."""


def sweep(history: History, send: Send, stalled_after_s: int) -> list[str]:
    """Repair every stalled run; returns what it re-announced, for the log and the tests."""
    actions: list[str] = []
    for run in history.stalled_runs(stalled_after_s):
        run_id = run["run_id"]
        if run["extracted_batches"] is None:
            send(Stage.EXTRACT.task, BatchRef(run_id, 0, ""))
            actions.append(f"{run_id}: extract")
            continue
        if run["publish_requested_at"] is not None or history.claim_publish(run_id):
            send(Stage.PUBLISH.task, BatchRef(run_id, 0, ""))
            actions.append(f"{run_id}: publish")
            continue
        batches = history.batches(run_id)
        by_stage = {(b["stage"], b["batch_no"]): b for b in batches}
        for stage, upstream in INPUT.items():
            for b in (b for b in batches if b["stage"] == upstream.value and b["status"] == "succeeded"):
                mine = by_stage.get((stage.value, b["batch_no"]))
                if mine is None or mine["status"] in IN_FLIGHT:
                    send(stage.task, BatchRef(run_id, b["batch_no"], b["output_key"]))
                    actions.append(f"{run_id}: {stage.value} batch {b['batch_no']}")
    for action in actions:
        log.warning("sweep_reannounced", action=action)
    return actions


def reclaim(history: History, send: Send) -> list[str]:
    """Mark the batches whose holder stopped renewing its lease ``lost`` and announce each again, to the task
    that was working on it with the object it was reading; returns what it announced."""
    actions = []
    for b in history.lose_expired_leases():
        stage = Stage(b["stage"])
        send(stage.task, BatchRef(b["run_id"], b["batch_no"], b["input_key"] or ""))
        actions.append(f"{b['run_id']}: {stage.batch_name(b['batch_no'])}")
        log.warning(
            "lease_ran_out",
            run_id=b["run_id"],
            stage=stage.value,
            batch=b["batch_no"],
            worker=b["worker"],
            pid=b["worker_pid"],
            lease_until=b["lease_until"].isoformat(),
        )
    return actions


@dataclass(frozen=True)
class Retried:
    run_id: str
    cleared: list[dict]  # the batch rows as they were before the retry
    announced: list[str]  # what was sent, for a person


def choose_batches(
    run: dict, later: dict | None, batches: list[dict], stage: Stage | None = None, batch: int | None = None
) -> list[tuple[Stage, int]]:
    """Which batches a retry clears, or ``RetryRefused`` with the reason (see the module's doc)."""
    run_id = run["run_id"]
    if run["status"] != "failed":
        hint = "follow it with `reviews runs`" if run["status"] in ("queued", "running") else "nothing to retry"
        raise RetryRefused(f"run {run_id} is {run['status']}: only a failed run is retried ({hint})")
    if later is not None:
        raise RetryRefused(
            f"run {later['run_id']} ({later['status']}) was started after run {run_id}: a retry would publish "
            "older data over it; start a new run instead"
        )
    rows = {(Stage(b["stage"]), b["batch_no"]): b for b in batches}
    if stage is not None and batch is not None:  # an explicit name: dead, or succeeded and done again
        if stage is Stage.EXTRACT and batch > 0:
            raise RetryRefused(
                "extracted batches are read from one snapshot of the source, not one by one: "
                "retry --stage extract resumes the extraction, or retry the stages after it"
            )
        row = rows.get((stage, batch))
        if row is None:
            raise RetryRefused(f"run {run_id} has no {stage.batch_name(batch)}")
        chosen = [(stage, batch)]
    else:
        chosen = [
            key
            for key, b in rows.items()
            if b["status"] == "dead" and (stage is None or key[0] is stage) and (batch is None or key[1] == batch)
        ]
        if not chosen:
            dead = (
                ", ".join(Stage(b["stage"]).batch_name(b["batch_no"]) for b in batches if b["status"] == "dead")
                or "none"
            )
            raise RetryRefused(f"run {run_id} has no failed batch to retry there (failed batches: {dead})")
    for s, n in list(chosen):  # what reads a re-run batch's output is re-run after it
        chosen.extend((d, n) for d in DOWNSTREAM[s] if (d, n) in rows and (d, n) not in chosen)
    if (Stage.PUBLISH, 0) in rows and (Stage.PUBLISH, 0) not in chosen:  # publish follows everything
        chosen.append((Stage.PUBLISH, 0))
    busy = [s.batch_name(n) for s, n in chosen if rows[(s, n)]["status"] in IN_FLIGHT]
    if busy:
        raise RetryRefused(f"run {run_id} still has work in flight ({', '.join(busy)}): retry once it has stopped")
    return chosen


def retry_run(
    history: History,
    send: Send,
    run_id: str,
    trigger: str,
    stage: Stage | None = None,
    batch: int | None = None,
) -> Retried:
    """An operator's retry (``reviews retry``): clear what ``choose_batches`` picks, and announce it again."""
    cleared, to_send = _reopen(history, run_id, trigger, stage, batch, request=False)
    for task, ref, _ in to_send:
        send(task, ref)
    return Retried(run_id, cleared, [name for _, _, name in to_send])


def request_retry(history: History, run_id: str, stage: Stage | None = None, batch: int | None = None) -> Retried:
    """The API's retry, which has no broker: the run reopened with a request the extract worker claims and
    announces (shared/run_requests.py). ``announced`` says what it will announce."""
    cleared, to_send = _reopen(history, run_id, "api", stage, batch, request=True)
    return Retried(run_id, cleared, [name for _, _, name in to_send])


def _reopen(
    history: History, run_id: str, trigger: str, stage: Stage | None, batch: int | None, request: bool
) -> tuple[list[dict], list[tuple[str, BatchRef, str]]]:
    """The batches cleared, and what announces them; read before anything is sent, so publish claimed means
    claimed by the reopening."""
    try:
        cleared = history.reopen_run(
            run_id, trigger, lambda run, later, rows: choose_batches(run, later, rows, stage, batch), request
        )
    except RunAlreadyActive as exc:
        raise RetryRefused(
            f"another run for {exc.logical_date} is queued or running: retry {run_id} once it has ended"
        ) from None
    publish = history.get_run(run_id)["publish_requested_at"] is not None
    return cleared, announcements(history, run_id, cleared, publish)


def announcements(history: History, run_id: str, cleared: list[dict], publish: bool) -> list[tuple[str, BatchRef, str]]:
    """What a retry announces, as (task, reference, name): each cleared batch whose input is there (what reads a
    cleared batch's output follows it through the usual chain), and publish when the reopening claimed it (only
    the publish step had failed)."""
    done = [b for b in history.batches(run_id) if b["status"] == "succeeded"]
    outputs = {(b["stage"], b["batch_no"]): b["output_key"] for b in done}
    found = []
    for row in sorted(cleared, key=lambda b: (list(Stage).index(Stage(b["stage"])), b["batch_no"])):
        s, n = Stage(row["stage"]), row["batch_no"]
        if s is Stage.EXTRACT:  # the extraction resumes after its last recorded batch
            ref = BatchRef(run_id, 0, "")
        elif s in INPUT and (INPUT[s].value, n) in outputs:  # else its input's own re-run announces it
            ref = BatchRef(run_id, n, outputs[(INPUT[s].value, n)])
        else:
            continue
        found.append((s.task, ref, s.batch_name(n)))
    if publish:
        found.append((Stage.PUBLISH.task, BatchRef(run_id, 0, ""), "publish"))
    return found


def operator_retry(
    history: History,
    send: Send | None,
    operator: Actor,
    run_id: str,
    stage: Stage | None = None,
    batch: int | None = None,
) -> Retried:
    """An operator's retry, recorded once in the audit trail: announced at once by the CLI (``retry_run``), or,
    with no ``send`` (the API has no broker), requested for the extract worker to announce (``request_retry``)."""
    with history.audited(operator, "retry", run_id, refusals=(RunNotFound, RetryRefused)) as outcome:
        outcome.detail = {k: v for k, v in (("stage", stage and stage.value), ("batch", batch)) if v is not None}
        if send is None:
            retried = request_retry(history, run_id, stage, batch)
        else:
            retried = retry_run(history, send, run_id, operator.via, stage, batch)
        outcome.text = (
            f"accepted: {len(retried.cleared)} batch(es) cleared, {', '.join(retried.announced) or 'none'} announced"
        )
    return retried
