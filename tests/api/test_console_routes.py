"""The console's routes and the audit trail on the real server and metadata database: the token on every one of
them, the operator's actions recorded once by name, a run's grid and log lines, health at a glance, a rollback."""

from __future__ import annotations

import json
from datetime import date

import httpx
import psycopg2
import pytest

from services.api.routes.console import MAX_LOG_LINES, size_warning
from shared.heartbeats import stale_after_s
from tests.pipeline.runs import failed_run

CONSOLE_READS = ["/audit", "/jobs/x/batches", "/jobs/x/logs", "/console/health", "/console/workers"]


@pytest.mark.parametrize("path", CONSOLE_READS)
def test_every_console_read_needs_the_operator_token(client: httpx.Client, path: str):
    missing = client.get(path)
    assert missing.status_code == 401 and "operator token" in missing.json()["detail"]
    assert client.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 403


def test_a_rollback_needs_the_operator_token(client: httpx.Client):
    assert client.post("/curated/rollback", json={}).status_code == 401
    assert client.post("/curated/rollback", json={}, headers={"Authorization": "Bearer wrong"}).status_code == 403


def test_the_console_page_is_served_and_holds_no_data(client: httpx.Client):
    page = client.get("/console/")
    assert page.status_code == 200 and "Pipeline console" in page.text
    # relative URLs only, like the storefront: it works under a prefix
    assert 'src="app.js"' in page.text and 'href="style.css"' in page.text
    # and nothing of the storefront links to it
    assert "console" not in client.get("/shop/").text + client.get("/shop/app.js").text


def test_both_pages_load_one_dom_helper_by_a_relative_url(client: httpx.Client):
    helper = client.get("/common/dom.js")
    assert helper.status_code == 200 and "function el(" in helper.text
    for page in ("console", "shop"):
        assert '<script src="../common/dom.js" defer></script>' in client.get(f"/{page}/").text
        assert "function el(" not in client.get(f"/{page}/app.js").text  # no twin of it


def actions(api_settings, n: int = 10) -> list[dict]:
    conn = psycopg2.connect(api_settings.metadata_dsn)
    try:
        with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            cur.execute("SELECT * FROM audit ORDER BY id DESC LIMIT %s", (n,))
            return cur.fetchall()
    finally:
        conn.close()


def end_active_runs(history) -> None:
    for run in history.list_runs(100):
        if run["status"] in ("queued", "running"):
            history.fail_run(run["run_id"], "ended by the test")


def test_each_operator_action_through_the_api_is_recorded_once_by_name(
    client: httpx.Client, auth, api_settings, api_history
):
    # given a failed run retried, and a trigger of today accepted, then refused as active
    end_active_runs(api_history)  # other modules' triggers of today
    run_id = failed_run(api_history, date(1999, 9, 1))
    before = (actions(api_settings, 1) or [{"id": 0}])[0]["id"]
    retried = client.post(f"/jobs/{run_id}/retry", headers=auth)
    accepted = client.post("/jobs", headers=auth, json={"limit": 7})
    refused = client.post("/jobs", headers=auth, json={"limit": 7})
    end_active_runs(api_history)
    assert (retried.status_code, accepted.status_code, refused.status_code) == (202, 202, 409)
    # when the trail is read through the console's route
    trail = client.get("/audit", headers=auth, params={"limit": 3}).json()["actions"]
    # then each action is there once, newest first, with who (the credential's name), what and the outcome
    assert [a["id"] > before for a in trail] == [True] * 3
    refusal, trigger, retry = trail
    assert (trigger["actor"], trigger["via"], trigger["action"]) == ("operator", "api", "trigger")
    assert trigger["target"] == accepted.json()["job_id"] and trigger["outcome"] == "accepted: queued"
    assert trigger["detail"] == {"limit": 7}
    assert refusal["action"] == "trigger" and refusal["outcome"].startswith("refused: run ")
    assert (retry["action"], retry["target"]) == ("retry", run_id)
    assert retry["outcome"] == "accepted: 1 batch(es) cleared, transform batch 2 announced"
    # and the token itself is nowhere in the table
    assert api_settings.api_token.get_secret_value() not in json.dumps(actions(api_settings, 1000), default=str)
    # a page older than an id pages on
    older = client.get("/audit", headers=auth, params={"limit": 1, "before": refusal["id"]}).json()["actions"]
    assert [a["id"] for a in older] == [trigger["id"]]


def test_a_runs_grid_has_every_batch_with_its_public_error(client: httpx.Client, auth, api_history):
    run_id = failed_run(api_history, date(1999, 9, 2))
    grid = client.get(f"/jobs/{run_id}/batches", headers=auth).json()
    assert grid["truncated"] is False
    cells = {(b["stage"], b["batch"]): b for b in grid["batches"]}
    assert len(cells) == 3 + 3 + 3 + 2  # extract, archive, transform, classify (batch 2 never classified)
    dead = cells[("transform", 2)]
    assert dead["status"] == "dead" and dead["error"] == "ArrowInvalid"  # the class, not the message
    assert cells[("transform", 1)] | {"seconds": None} == {
        "stage": "transform",
        "batch": 1,
        "status": "succeeded",
        "attempts": 1,
        "rows_in": 10,
        "rows_out": 9,
        "rejects": 1,
        "seconds": None,
        "error": None,
    }
    assert client.get("/jobs/no-such-run/batches", headers=auth).status_code == 404


def test_a_runs_log_lines_are_those_reviews_logs_shows_bounded(client: httpx.Client, auth, api_history, api_settings):
    run_id = failed_run(api_history, date(1999, 9, 3))
    logs = api_settings.state_path / "logs"
    logs.mkdir(exist_ok=True)
    lines = [
        json.dumps({"timestamp": f"t{i}", "level": "info", "event": "batch_transformed", "run_id": run_id, "batch": i})
        for i in range(MAX_LOG_LINES + 20)
    ]
    (logs / "worker-transform-console-test.log").write_text("\n".join([*lines, '{"event": "other run"}']) + "\n")
    found = client.get(f"/jobs/{run_id}/logs", headers=auth, params={"last": 2}).json()["components"]
    assert found == {
        "worker-transform-console-test": [
            f"t{i} INFO    batch_transformed  run_id={run_id} batch={i}"
            for i in (MAX_LOG_LINES + 18, MAX_LOG_LINES + 19)
        ]
    }
    assert client.get(f"/jobs/{run_id}/logs", headers=auth, params={"last": MAX_LOG_LINES + 1}).status_code == 422
    assert client.get("/jobs/no-such-run/logs", headers=auth).status_code == 404


def test_health_at_a_glance_evaluates_the_rules_the_api_can(client: httpx.Client, auth):
    health = client.get("/console/health", headers=auth).json()
    assert [r["name"] for r in health["rules"]] == [
        "last_run",
        "run_duration",
        "retries_exhausted",
        "curated_age",
        "reject_share",
    ]
    assert all(r["severity"] in ("ok", "warning", "critical") and r["threshold"] for r in health["rules"])
    assert {"redis", "s3", "version", "age_seconds", "rows"} <= health["served"].keys()
    assert "curated_size_drop" in health["doctor_only"]


def test_a_rollback_is_requested_for_the_publish_worker_and_an_unknown_version_is_404(
    client: httpx.Client, auth, api_history
):
    assert client.post("/curated/rollback", headers=auth, json={"to": "20990101T000000Z-nope"}).status_code == 404
    # a version is a run that published: the route requests it in the history, the publish worker does it
    run_id = api_history.create_run("cli", {}, date(1999, 9, 4))
    api_history.start_run(run_id)
    api_history.finish_run(run_id, f"curated/review_curated_{run_id}.parquet", 12)
    accepted = client.post("/curated/rollback", headers=auth, json={"to": run_id})
    assert accepted.status_code == 202 and accepted.json() == {"status": "requested", "to": run_id}
    # the request waits for the publish worker, with the operator's name and no secret
    requests = []
    api_history.claim_request(requests.append, ("rollback",))
    assert [(r["run_id"], r["kind"], r["actor"]) for r in requests] == [(run_id, "rollback", "operator")]


def test_health_shows_the_kept_versions_with_their_rows_and_bytes(client: httpx.Client, auth, api_settings):
    # two published runs, the newest recorded (as the publish worker records them, with their bytes)
    older, newer = "19990301T000000Z-kept01", "19990302T000000Z-kept02"
    conn = psycopg2.connect(api_settings.metadata_dsn)
    try:
        with conn, conn.cursor() as cur:
            for n, run_id in enumerate((older, newer)):
                cur.execute(
                    "INSERT INTO run (run_id, logical_date, trigger, status, created_at, finished_at, curated_key, "
                    "curated_rows, curated_bytes) VALUES (%s, %s, 'cli', 'succeeded', now() + make_interval(days => "
                    "1000 + %s), now(), %s, %s, %s)",
                    (
                        run_id,
                        date(1999, 3, 1 + n),
                        n,
                        f"curated/review_curated_{run_id}.parquet",
                        10 + n,
                        1000 * (n + 1),
                    ),
                )
        health = client.get("/console/health", headers=auth).json()
        kept = {v["version"]: v for v in health["kept"]}
        assert len(kept) <= api_settings.curated_versions_kept  # the newest the publisher keeps, newest first
        assert [v["version"] for v in health["kept"]][:2] == [newer, older]
        assert (kept[newer]["rows"], kept[newer]["bytes"], kept[older]["bytes"]) == (11, 2000, 1000)
        assert health["previous"]["version"] == newer and health["previous"]["bytes"] == 2000
    finally:
        with conn, conn.cursor() as cur:
            cur.execute("DELETE FROM run WHERE run_id IN (%s, %s)", (older, newer))
        conn.close()


def test_a_size_far_from_the_previous_ones_is_said_plainly(api_settings):
    def sizes(served, previous):
        return size_warning({"curated_bytes": served}, {"curated_bytes": previous}, api_settings)

    assert sizes(1000, 1200) is None and sizes(1200, 1000) is None and sizes(None, 1000) is None
    assert (
        sizes(400, 1000) == "The served version is 60% smaller than the previous one (more than 50%): 400 bytes "
        "against 1,000."
    )
    assert sizes(1600, 1000).startswith("The served version is 60% larger than the previous one (more than 50%)")


def test_each_stage_shows_its_live_and_stale_workers(client: httpx.Client, auth, api_settings):
    bound = stale_after_s(api_settings)
    conn = psycopg2.connect(api_settings.metadata_dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("TRUNCATE worker_heartbeat")
            cur.execute(
                "INSERT INTO worker_heartbeat (worker, stage, host, pid, started_at, last_seen) VALUES "
                "('extract@h', 'extract', 'h', 10, now() - interval '1 h', now()), "
                "('classify@h', 'classify', 'h', 11, now() - interval '1 h', now() - make_interval(secs => %s))",
                (bound + 1,),
            )
        answer = client.get("/console/workers", headers=auth).json()
    finally:
        with conn, conn.cursor() as cur:
            cur.execute("TRUNCATE worker_heartbeat")
        conn.close()
    assert answer["stale_after_seconds"] == bound
    stages = {s["stage"]: s for s in answer["stages"]}
    assert list(stages) == ["extract", "archive", "transform", "classify", "publish", "beat"]
    assert stages["extract"]["live"] == 1 and stages["extract"]["workers"][0]["live"] is True
    # a heartbeat older than the bound reads stale: the stage has no live worker
    (classify,) = stages["classify"]["workers"]
    assert stages["classify"]["live"] == 0 and classify["live"] is False and classify["age_seconds"] > bound
    assert stages["archive"] == {"stage": "archive", "live": 0, "workers": []}
