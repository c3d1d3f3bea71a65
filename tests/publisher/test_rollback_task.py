"""The publish worker's rollback task, which POST /curated/rollback asks for: done with the pipeline's clients,
recorded once in the operator's name, and a refusal recorded without failing the task."""

from __future__ import annotations

import redis

from services.publisher import tasks
from shared import clients
from shared.clients import Clients
from tests.factories import publish_batches, scored_row

OLD, NEW = "20260701T000000Z-rolla1", "20260702T000000Z-rollb2"


def test_the_rollback_task_serves_the_version_and_records_the_operator(servers, own_lake, history, monkeypatch):
    for run_id in (OLD, NEW):
        publish_batches(own_lake, run_id, [[scored_row(1, "P", 0.5)]])
    worker = Clients(servers, own_lake, history, redis.Redis.from_url(servers.redis_url), celery=None)
    monkeypatch.setattr(clients, "get", lambda: worker)
    # when the API's operator "alice" asks for the version before the served one
    assert tasks.rollback.run(None, "alice", "api") == OLD
    # then it is served, and the trail says who and how it ended
    assert own_lake.latest().version == OLD
    [done] = history.audit_trail(1)
    assert (done["actor"], done["via"], done["action"], done["target"]) == ("alice", "api", "rollback", OLD)
    assert done["outcome"] == f"done: latest is {OLD}"
    # a version the lake no longer keeps is refused, recorded, and the task does not fail (nothing to retry)
    assert tasks.rollback.run("20260101T000000Z-pruned", "alice", "api") == ""
    assert history.audit_trail(1)[0]["outcome"].startswith("refused: no curated version '20260101T000000Z-pruned'")
    assert own_lake.latest().version == OLD
