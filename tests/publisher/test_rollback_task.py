"""The publish worker's part of POST /curated/rollback: the request done with the pipeline's clients, recorded
once in the operator's name, and a refusal recorded without the request staying (nothing to try again)."""

from __future__ import annotations

import redis

from services.publisher.tasks import requested_rollback
from shared.clients import Clients
from tests.factories import publish_batches, scored_row

OLD, NEW = "20260701T000000Z-rolla1", "20260702T000000Z-rollb2"


def test_a_requested_rollback_serves_the_version_and_records_the_operator(servers, own_lake, history):
    for run_id in (OLD, NEW):
        publish_batches(own_lake, run_id, [[scored_row(1, "P", 0.5)]])
    worker = Clients(servers, own_lake, history, redis.Redis.from_url(servers.redis_url), celery=None)
    # when the API's operator "alice" asked for the older version
    assert requested_rollback(worker, {"run_id": OLD, "actor": "alice"}) == [f"rollback to {OLD}"]
    # then it is served, and the trail says who and how it ended
    assert own_lake.latest().version == OLD
    [done] = history.audit_trail(1)
    assert (done["actor"], done["via"], done["action"], done["target"]) == ("alice", "api", "rollback", OLD)
    assert done["outcome"] == f"done: latest is {OLD}"
    # a version the lake no longer keeps is refused, recorded, and not raised (the claim commits)
    assert requested_rollback(worker, {"run_id": "20260101T000000Z-pruned", "actor": "alice"}) == []
    assert history.audit_trail(1)[0]["outcome"].startswith("refused: no curated version '20260101T000000Z-pruned'")
    assert own_lake.latest().version == OLD
