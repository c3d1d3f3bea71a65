"""The sweep: finds runs that stopped moving and re-announces what they wait for.

Messages can be lost between a database commit and a broker send (a worker killed
in between, Redis restarted without the message). Every stage is idempotent, so
re-announcing a batch whose next step never ran is always safe.
"""

from __future__ import annotations

import structlog

from shared.flow import IN_FLIGHT, INPUT, TASK, BatchRef, Send
from shared.history import History, Stage

log = structlog.get_logger()


def sweep(history: History, send: Send, stalled_after_s: int) -> list[str]:
    """Repair every stalled run; returns what it re-announced, for the log and the tests."""
    actions: list[str] = []
    for run in history.stalled_runs(stalled_after_s):
        run_id = run["run_id"]
        if run["extracted_batches"] is None:
            send(TASK[Stage.EXTRACT], BatchRef(run_id, 0, ""))
            actions.append(f"{run_id}: extract")
            continue
        if run["publish_requested_at"] is not None or history.claim_publish(run_id):
            send(TASK[Stage.PUBLISH], BatchRef(run_id, 0, ""))
            actions.append(f"{run_id}: publish")
            continue
        batches = history.batches(run_id)
        by_stage = {(b["stage"], b["batch_no"]): b for b in batches}
        for stage, upstream in INPUT.items():
            for b in (b for b in batches if b["stage"] == upstream.value and b["status"] == "succeeded"):
                mine = by_stage.get((stage.value, b["batch_no"]))
                if mine is None or mine["status"] in IN_FLIGHT:
                    send(TASK[stage], BatchRef(run_id, b["batch_no"], b["output_key"]))
                    actions.append(f"{run_id}: {stage.value} batch {b['batch_no']}")
    for action in actions:
        log.warning("sweep_reannounced", action=action)
    return actions
