"""The runs the API requests, on the real metadata database: what a request sends, once, whoever claims it.

A database of this module's own: the session's extract worker, when the pipeline tests started it, claims the
requests of the session's database, never these.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import date

import psycopg2
import pytest

from shared.history import History
from shared.history.schema import init_metadata_db
from shared.recovery import request_retry
from shared.run_requests import RequestListener, claim_all
from shared.settings import Settings
from shared.stages import Stage
from tests.pipeline.runs import Outbox, failed_run, wait_for


@pytest.fixture(scope="module")
def requests_db(servers: Settings) -> Settings:
    settings = servers.model_copy(update={"metadata_db": "run_requests_metadata"})
    init_metadata_db(settings)
    return settings


@pytest.fixture(scope="module")
def owner(requests_db: Settings) -> Iterator[History]:
    history = History(requests_db.metadata_dsn)
    yield history
    history.close()


@pytest.fixture(scope="module")
def worker(requests_db: Settings) -> Iterator[History]:
    """The extract worker claims requests as the workers' role, not the owner."""
    history = History(requests_db.worker_metadata_dsn)
    yield history
    history.close()


@pytest.fixture(scope="module")
def api_role(requests_db: Settings) -> Iterator[History]:
    history = History(requests_db.api_metadata_dsn)
    yield history
    history.close()


@pytest.fixture(autouse=True)
def nothing_waiting(worker: History) -> None:
    claim_all(worker, Outbox())  # what an earlier test left is not this one's


def test_a_requested_run_is_sent_its_extraction_once(api_role: History, owner: History, worker: History):
    run_id = api_role.request_run({"limit": 5}, date(2002, 1, 1))
    outbox = Outbox()
    assert claim_all(worker, outbox) == 1
    assert outbox.for_run(run_id) == [("extract.run", 0, "")]
    assert claim_all(worker, outbox) == 0 and len(outbox.sent) == 1  # claimed: never sent twice
    run = owner.get_run(run_id)
    assert (run["trigger"], run["status"], run["params"]) == ("api", "queued", {"limit": 5})


def test_two_claimers_side_by_side_send_each_request_once(api_role: History, requests_db: Settings):
    runs = [api_role.request_run({}, date(2002, 2, day)) for day in range(1, 21)]
    outbox, histories = Outbox(), [History(requests_db.worker_metadata_dsn) for _ in range(2)]
    threads = [threading.Thread(target=claim_all, args=(h, outbox)) for h in histories]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for h in histories:
        h.close()
    assert sorted(ref.run_id for _, ref in outbox.sent) == sorted(runs)


def test_a_request_whose_send_failed_stays_for_the_next_claim(api_role: History, owner: History, worker: History):
    run_id = api_role.request_run({}, date(2002, 3, 1))

    def broker_down(task, ref):
        raise ConnectionError("broker down")

    with pytest.raises(ConnectionError):
        claim_all(worker, broker_down)
    outbox = Outbox()
    assert claim_all(worker, outbox) == 1 and outbox.for_run(run_id) == [("extract.run", 0, "")]


def test_a_requested_retry_announces_what_it_cleared_as_the_cli_would(
    api_role: History, owner: History, worker: History
):
    run_id = failed_run(owner, date(2002, 4, 1))
    retried = request_retry(api_role, run_id)
    # the API's answer says what will be announced; nothing is sent until the claim
    assert retried.announced == ["transform batch 2"] and owner.get_run(run_id)["status"] == "running"
    outbox = Outbox()
    assert claim_all(worker, outbox) == 1
    assert outbox.for_run(run_id) == [("transform.batch", 2, "raw/2")]


def test_a_requested_retry_of_a_failed_publish_announces_publish(api_role: History, owner: History, worker: History):
    run_id = owner.create_run("cli", {}, date(2002, 5, 1))
    owner.start_run(run_id)
    owner.finish_batch(run_id, Stage.CLASSIFY, 1, rows_in=5, rows_out=5, output_key="scored/1")
    owner.set_extracted(run_id, 1, 5)
    assert owner.claim_publish(run_id)
    owner.kill_batch(run_id, Stage.PUBLISH, 0, "ClientError('AccessDenied')")
    owner.fail_run(run_id, "publish batch 0 failed")
    assert request_retry(api_role, run_id).announced == ["publish"]
    outbox = Outbox()
    claim_all(worker, outbox)
    assert outbox.for_run(run_id) == [("publish.run", 0, "")]


def test_the_listener_is_woken_by_the_request_itself(
    api_role: History, owner: History, worker: History, requests_db: Settings
):
    # polling once an hour: only the NOTIFY of the request's commit can wake it within the wait
    outbox = Outbox()
    listener = RequestListener(requests_db.worker_metadata_dsn, worker, outbox, poll_s=3600).start()
    try:
        wait_for(lambda: listener_listening(requests_db), 10, "the listener's LISTEN")
        run_id = api_role.request_run({}, date(2002, 6, 1))
        wait_for(lambda: outbox.for_run(run_id), 10, "the extraction of the requested run", every_s=0.05)
    finally:
        listener.stop()
    assert outbox.for_run(run_id) == [("extract.run", 0, "")]


def listener_listening(settings: Settings) -> bool:
    with psycopg2.connect(settings.postgres_admin_dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND query LIKE 'LISTEN %%'",
            (settings.metadata_db,),
        )
        return cur.fetchone()[0] > 0
