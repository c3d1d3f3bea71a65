"""GET /jobs/{id} on the real server and metadata database: a batch whose worker died is shown as such."""

from __future__ import annotations

from datetime import date

import httpx

from shared.recovery import reclaim
from shared.stages import Stage
from tests.pipeline.runs import Outbox
from tests.pipeline.test_leases import GONE_PID, a_classifying_run, expire_lease


def test_a_batch_whose_worker_died_is_shown_with_its_holder_and_who_took_it(
    client: httpx.Client, api_settings, api_history, auth
):
    # given a classify batch whose worker died (its lease ran out) and that the lease check announced again
    run_id = a_classifying_run(api_history, date(1998, 4, 1))
    api_history.begin_batch(run_id, Stage.CLASSIFY, 1, 3, "cleaned/1", "classify-1@reviews", GONE_PID, lease_s=30)
    expire_lease(api_settings, run_id, Stage.CLASSIFY, 1)
    reclaim(api_history, Outbox())
    # then the job shows it lost, with who held it, and no one yet taking it over
    job = client.get(f"/jobs/{run_id}", headers=auth).json()
    assert job["stages"]["classify"]["lost"] == 1 and job["stages"]["classify"]["running"] == 0
    assert job["stages"]["classify"]["last_error"] == "the worker holding it died"
    (lost,) = job["lost"]
    assert (lost["stage"], lost["batch"], lost["attempt"], lost["worker"], lost["worker_pid"]) == (
        "classify",
        1,
        1,
        "classify-1@reviews",
        GONE_PID,
    )
    assert lost["lease_until"] and lost["noticed_at"] and lost["taken_over_at"] is None
    # when another worker takes it, then the job says who and when
    api_history.begin_batch(run_id, Stage.CLASSIFY, 1, 3, "cleaned/1", "classify-2@reviews", 4310, lease_s=30)
    job = client.get(f"/jobs/{run_id}", headers=auth).json()
    assert job["stages"]["classify"]["lost"] == 0 and job["stages"]["classify"]["running"] == 1
    (lost,) = job["lost"]
    assert (lost["taken_over_by"], lost["taken_over_pid"]) == ("classify-2@reviews", 4310)
    assert lost["taken_over_at"] >= lost["noticed_at"]
    assert [j["lost"] for j in client.get("/jobs", headers=auth).json()["jobs"] if j["job_id"] == run_id] == [
        job["lost"]
    ]
