"""A run asked for through the real API on the real stack: the API holds no broker credential, the extract
worker claims its request and starts it (shared/run_requests.py)."""

from __future__ import annotations

import httpx
import psycopg2

from ops.runs_cli import format_report, watch
from shared.settings import Settings
from tests.pipeline.runs import RUN_TIMEOUT_S, wait_for


def test_a_job_posted_to_the_api_becomes_a_running_run_and_publishes(pipeline, servers: Settings):
    # given the stack's own API, started with its secrets only (no broker password)
    token = {"Authorization": f"Bearer {servers.api_token.get_secret_value()}"}
    with httpx.Client(base_url=servers.api_base_url, timeout=10) as client:
        # when a job is posted
        accepted = client.post("/jobs", headers=token, json={"full": True, "limit": 40, "batch_size": 20})
        assert accepted.status_code == 202, accepted.text
        run_id = accepted.json()["job_id"]
        # then the extract worker starts it: the run is running (or already done) without anyone else's help
        wait_for(lambda: pipeline.history.get_run(run_id)["started_at"], 60, "the requested run to start", 0.1)
        run = watch(pipeline.history, run_id, timeout_s=RUN_TIMEOUT_S, interval_s=0.5)
        assert run["status"] == "succeeded" and run["trigger"] == "api", format_report(
            run, pipeline.history.stage_summary(run_id)
        )
        job = client.get(f"/jobs/{run_id}", headers=token).json()
        assert job["status"] == "succeeded" and job["retries"] == 0
        # the version's size, recorded by the publish worker: more than its Parquet alone (LATEST.json's size)
        assert job["curated_bytes"] > pipeline.lake.latest().size_bytes > 0
    # and its request was claimed once
    with psycopg2.connect(servers.metadata_dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT kind, claimed_at IS NOT NULL FROM run_request WHERE run_id = %s", (run_id,))
        assert cur.fetchall() == [("start", True)]
