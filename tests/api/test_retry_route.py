"""POST /jobs/{id}/retry on the real server and metadata database: the token, what it re-runs, what it refuses."""

from __future__ import annotations

from datetime import date

import httpx
import pytest
from pydantic import ValidationError

from services.api.models import RetryRequest
from shared.stages import Stage
from tests.pipeline.runs import failed_run


def test_a_failed_job_is_retried_and_what_cannot_be_is_refused(client: httpx.Client, api_settings, api_history):
    auth = {"Authorization": f"Bearer {api_settings.api_token.get_secret_value()}"}
    run_id = failed_run(api_history, date(1998, 3, 1))
    assert client.post(f"/jobs/{run_id}/retry").status_code == 401
    assert client.post(f"/jobs/{run_id}/retry", headers={"Authorization": "Bearer wrong"}).status_code == 403
    assert client.post("/jobs/no-such-job/retry", headers=auth).status_code == 404
    assert client.post(f"/jobs/{run_id}/retry", headers=auth, json={"stage": "nowhere"}).status_code == 422
    narrowed = client.post(f"/jobs/{run_id}/retry", headers=auth, json={"stage": "classify"})
    assert narrowed.status_code == 409 and "failed batches: transform batch 2" in narrowed.json()["detail"]
    # when retried, then the dead batch is re-run and the job is running again
    retried = client.post(f"/jobs/{run_id}/retry", headers=auth)
    assert retried.status_code == 202, retried.text
    body = retried.json()
    assert body["status"] == "running" and body["announced"] == ["transform batch 2"]
    assert [(b["stage"], b["batch"], b["was"]) for b in body["cleared"]] == [("transform", 2, "dead")]
    assert client.get(f"/jobs/{run_id}", headers=auth).json()["status"] == "running"
    # a running job is not retried
    again = client.post(f"/jobs/{run_id}/retry", headers=auth)
    assert again.status_code == 409 and "only a failed run is retried" in again.json()["detail"]


def test_a_retried_job_says_how_many_times_it_was_retried(client: httpx.Client, api_settings, api_history):
    auth = {"Authorization": f"Bearer {api_settings.api_token.get_secret_value()}"}
    run_id = failed_run(api_history, date(1998, 3, 2))
    assert client.get(f"/jobs/{run_id}", headers=auth).json()["retries"] == 0
    # when retried through the API, fails again, and is retried again
    assert client.post(f"/jobs/{run_id}/retry", headers=auth).status_code == 202
    api_history.begin_batch(run_id, Stage.TRANSFORM, 2, 1, input_key="raw/2")
    api_history.kill_batch(run_id, Stage.TRANSFORM, 2, "ArrowInvalid('again')")
    api_history.fail_run(run_id, "transform batch 2 failed")
    assert client.post(f"/jobs/{run_id}/retry", headers=auth).status_code == 202
    # then the run (its mode still its plan's) says it was retried twice, alone and in the list
    job = client.get(f"/jobs/{run_id}", headers=auth).json()
    assert job["retries"] == 2 and job["mode"] is None
    listed = {j["job_id"]: j for j in client.get("/jobs", headers=auth, params={"limit": 100}).json()["jobs"]}
    assert listed[run_id]["retries"] == 2


def test_a_batch_number_is_a_json_schema_integer_and_never_a_string():
    assert RetryRequest.model_validate_json('{"batch": 3.0}').batch == 3  # JSON Schema's integer: what the schema says
    for refused in ('{"batch": "3"}', '{"batch": 3.5}'):
        with pytest.raises(ValidationError):
            RetryRequest.model_validate_json(refused)
