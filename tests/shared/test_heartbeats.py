"""Workers' heartbeats on the real stack: every stage's worker and beat read live through the API's console route,
which holds no broker credential; a heartbeat aged past the bound reads stale."""

from __future__ import annotations

import httpx
import psycopg2

from shared.heartbeats import BEAT, Heartbeat, stale_after_s
from shared.settings import Settings
from shared.stages import Stage
from tests.pipeline.runs import wait_for


def test_the_stacks_workers_and_beat_read_live_through_the_api(pipeline, servers: Settings):
    token = {"Authorization": f"Bearer {servers.api_token.get_secret_value()}"}
    stages = [s.value for s in Stage] + [BEAT]
    with httpx.Client(base_url=servers.api_base_url, timeout=10) as client:

        def live() -> dict | None:
            answer = client.get("/console/workers", headers=token).json()
            by_stage = {s["stage"]: s for s in answer["stages"]}
            return by_stage if all(by_stage[s]["live"] >= 1 for s in stages) else None

        # beat is seen through its lease check, every LEASE_CHECK_EVERY_S
        by_stage = wait_for(live, 3 * servers.lease_check_every_s + 10, "every stage and beat to read live")
    assert list(by_stage) == stages
    extract = by_stage["extract"]["workers"][0]
    assert extract["worker"].startswith("extract") and extract["pid"] > 0 and extract["host"]


def test_a_heartbeat_is_written_at_once_and_ages_into_stale(pipeline, servers: Settings):
    # the workers' role writes its heartbeat, then stops; aged past the bound, the row reads stale
    heartbeat = Heartbeat(servers.worker_metadata_dsn, "test@nowhere", "transform", every_s=60).start()
    heartbeat.stop()
    conn = psycopg2.connect(servers.metadata_dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(
                "UPDATE worker_heartbeat SET last_seen = last_seen - make_interval(secs => %s) "
                "WHERE worker = 'test@nowhere'",
                (stale_after_s(servers),),
            )
        token = {"Authorization": f"Bearer {servers.api_token.get_secret_value()}"}
        answer = httpx.get(f"{servers.api_base_url}/console/workers", headers=token, timeout=10).json()
    finally:
        with conn, conn.cursor() as cur:
            cur.execute("DELETE FROM worker_heartbeat WHERE worker = 'test@nowhere'")
        conn.close()
    transform = {w["worker"]: w for s in answer["stages"] if s["stage"] == "transform" for w in s["workers"]}
    assert transform["test@nowhere"]["live"] is False
    assert any(w["live"] for name, w in transform.items() if name != "test@nowhere")  # the stack's own, still live
