"""Listing curated versions and rolling back the one served, on the real S3 server."""

from __future__ import annotations

import pytest
import redis

from shared.curated.versions import UnknownVersion, list_versions, operator_rollback, rollback
from shared.history.audit import Actor
from shared.lake import curated_key
from tests.factories import publish_batches, scored_row

RUNS = ["20260501T000000Z-aaaaaa", "20260502T000000Z-bbbbbb", "20260503T000000Z-cccccc"]


@pytest.fixture(scope="module", autouse=True)
def three_versions(own_lake):
    for n, run_id in enumerate(RUNS, start=1):
        rows = [scored_row(i, "P", 0.5) for i in range(n)]
        publish_batches(own_lake, run_id, [rows])


def test_list_marks_the_latest_newest_first(own_lake):
    versions = list_versions(own_lake)
    assert [v.version for v in versions] == RUNS[::-1]
    assert [v.latest for v in versions] == [True, False, False]


def test_rollback_defaults_to_the_previous_version_and_keeps_its_age(own_lake):
    version = rollback(own_lake)
    assert (version.version, version.rows) == (RUNS[1], 2)
    assert own_lake.latest() == version
    head = own_lake.s3.head_object(Bucket=own_lake.bucket, Key=curated_key(RUNS[1]))
    assert version.published_at == head["LastModified"].isoformat()  # the file's age, not the rollback's
    assert rollback(own_lake, RUNS[2]).version == RUNS[2]


def test_rollback_to_an_unknown_version_names_the_ones_kept(own_lake):
    with pytest.raises(UnknownVersion, match=RUNS[0]):
        rollback(own_lake, "20990101T000000Z-nope")


def test_an_operators_rollback_is_audited_once_with_its_outcome(own_lake, history, servers):
    broker, alice = redis.Redis.from_url(servers.redis_url), Actor("alice", "api")
    assert operator_rollback(own_lake, broker, history, alice, RUNS[0]).version == RUNS[0]
    with pytest.raises(UnknownVersion):
        operator_rollback(own_lake, broker, history, alice, "20990101T000000Z-nope")
    refused, done = history.audit_trail(2)
    assert (done["actor"], done["via"], done["action"], done["target"]) == ("alice", "api", "rollback", RUNS[0])
    assert done["outcome"] == f"done: latest is {RUNS[0]}"
    assert refused["target"] == "20990101T000000Z-nope" and refused["outcome"].startswith("refused: no curated version")
