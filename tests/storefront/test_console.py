"""What an operator sees: the console in headless Chromium, on a real API over a run history built for it.

Each test saves a screenshot under test-output/storefront/ (the ``page`` fixture); docs/console.png is
``test_one_run_is_a_grid_of_its_batches_with_the_errors_and_log_lines_of_the_failed_ones.png``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import psycopg2
import pytest
from playwright.sync_api import Dialog, Page, expect

from ops.stack.process import free_port
from shared.history.schema import init_metadata_db
from shared.settings import Settings
from tests.api.conftest import ServerThread
from tests.storefront.conftest import CATALOGUE_VERSION, Console

FULL, INCREMENTAL, RUNNING, FAILED = (
    "20260428T020000Z-aaaaaa",
    "20260429T020000Z-bbbbbb",
    "20260502T020000Z-cccccc",
    "20260503T020000Z-dddddd",
)
BATCHES = 24
# run id, logical date, status, mode, minutes it took, batches
RUNS = [
    (FULL, "2026-04-28", "succeeded", "full", 41, BATCHES),
    (INCREMENTAL, "2026-04-29", "succeeded", "incremental", 6, 4),  # retried twice before it succeeded
    (CATALOGUE_VERSION, "2026-05-01", "succeeded", "incremental", 17, 4),  # slow: over twice its mode's mean
    (RUNNING, "2026-05-02", "running", "incremental", None, 8),
    (FAILED, "2026-05-03", "failed", "incremental", 9, 6),  # the newest: an operator may retry it
]
# The bytes each published version's objects take: the served one 61 % smaller than the one before it.
CURATED_BYTES = {FULL: 30_000_000, INCREMENTAL: 31_000_000, CATALOGUE_VERSION: 12_000_000}


def seed(settings: Settings) -> None:
    """The runs above, as the workers would have left them, with their batches: the failed run's transform batch
    3 dead, the running run half-way through classify."""
    conn = psycopg2.connect(settings.metadata_dsn)
    with conn, conn.cursor() as cur:
        cur.execute("TRUNCATE run, audit, worker_heartbeat CASCADE")
        for run_id, day, status, mode, minutes, batches in RUNS:
            cur.execute(
                """
                INSERT INTO run (run_id, logical_date, trigger, status, mode, mode_reason, created_at, started_at,
                                 finished_at, extracted_batches, source_rows, curated_key, curated_rows, curated_bytes,
                                 error, changes)
                VALUES (%(run)s, %(day)s, 'beat', %(status)s, %(mode)s, 'the schedule', %(day)s::timestamptz + '2 h',
                        %(day)s::timestamptz + '2 h', %(day)s::timestamptz + '2 h' + make_interval(mins => %(min)s),
                        %(n)s, %(n)s * 1000, %(key)s, %(rows)s, %(bytes)s, %(error)s, %(changes)s)
                """,
                {
                    "run": run_id,
                    "day": day,
                    "status": status,
                    "mode": mode,
                    "min": minutes or 0,
                    "n": batches,
                    "key": f"curated/review_curated_{run_id}.parquet" if status == "succeeded" else None,
                    "rows": 24_000 + batches * 990 if status == "succeeded" else None,
                    "bytes": CURATED_BYTES.get(run_id),
                    "error": "transform batch 3 failed: ArrowInvalid('Parquet magic bytes not found in s3://x')"
                    if status == "failed"
                    else None,
                    "changes": json.dumps({"added": batches * 990, "carried": 24_000, "erased": 2, "deleted": 5})
                    if status == "succeeded"
                    else None,
                },
            )
            if minutes is None:
                cur.execute(
                    "UPDATE run SET finished_at = NULL, started_at = now() - interval '3 min' WHERE run_id = %s",
                    (run_id,),
                )
            for stage in ("extract", "archive", "transform", "classify"):
                for n in range(1, batches + 1):
                    state = "succeeded"
                    if run_id == FAILED and stage == "transform" and n == 3:
                        state = "dead"
                    elif run_id == FAILED and stage == "classify" and n == 3:
                        continue
                    elif run_id == RUNNING and stage == "classify" and n > 3:
                        state = "running" if n < 6 else None
                    elif run_id == RUNNING and stage == "transform" and n == 7:
                        state = "retrying"
                    if state is None:
                        continue
                    cur.execute(
                        """
                        INSERT INTO batch (run_id, stage, batch_no, status, attempts, started_at, finished_at,
                                           rows_in, rows_out, rejects, last_error)
                        VALUES (%s, %s, %s, %s, %s, now() - interval '2 min', now() - interval '1 min', 1000,
                                %s, %s, %s)
                        """,
                        (
                            run_id,
                            stage,
                            n,
                            state,
                            3 if state == "dead" else 1,
                            990 if stage == "transform" else 1000,
                            10 if stage == "transform" else 0,
                            "ArrowInvalid('Parquet magic bytes not found') [dead-lettered after 3 attempts]"
                            if state == "dead"
                            else None,
                        ),
                    )
            if status == "succeeded":
                cur.execute(
                    "INSERT INTO batch (run_id, stage, batch_no, status, attempts, started_at, finished_at) "
                    "VALUES (%s, 'publish', 0, 'succeeded', 1, now(), now())",
                    (run_id,),
                )
        # two retries of INCREMENTAL by an operator, each clearing its dead batches at one time
        cur.execute(
            "INSERT INTO batch_retry (run_id, stage, batch_no, retried_at, trigger, status, attempts, retries) "
            "SELECT %s, 'transform', n, '2026-04-29 03:00'::timestamptz + make_interval(mins => 10 * r), 'cli', "
            "'dead', 3, 2 FROM generate_series(1, 2) AS r, generate_series(1, 2) AS n",
            (INCREMENTAL,),
        )
    conn.close()


@pytest.fixture(scope="module")
def console_settings(shop_settings: Settings) -> Settings:
    """The storefront's bucket and catalogue (so a version is served), a run history of the console's own."""
    settings = shop_settings.model_copy(update={"metadata_db": "console_test_metadata", "api_port": free_port()})
    init_metadata_db(settings)
    return settings


@pytest.fixture(scope="module")
def console_api(shop_api: ServerThread, console_settings: Settings) -> Iterator[ServerThread]:
    with ServerThread(console_settings) as server:
        yield server


@pytest.fixture
def history_seeded(console_settings: Settings) -> Settings:
    seed(console_settings)
    return console_settings


def sign_in(page: Page, api: ServerThread, settings: Settings, hash_: str = "#/") -> None:
    page.goto(f"{api.url}/console/{hash_}")
    expect(page.get_by_role("heading", name="Operator token needed")).to_be_visible()  # asks nothing of the API
    page.get_by_label("Operator token").fill(settings.api_token.get_secret_value())
    page.get_by_role("button", name="Use").click()


def accept(answers: list[str]):
    def on_dialog(dialog: Dialog) -> None:
        answers.append(dialog.message)
        dialog.accept()

    return on_dialog


def test_without_the_token_the_console_says_what_it_needs(page: Page, console: Console, console_api, history_seeded):
    page.goto(f"{console_api.url}/console/")
    expect(page.get_by_role("heading", name="Operator token needed")).to_be_visible()
    expect(page.get_by_text("enter the operator token (API_TOKEN) above")).to_be_visible()
    # a wrong token is refused by the API, which says why
    page.get_by_label("Operator token").fill("not-the-token")
    page.get_by_role("button", name="Use").click()
    expect(page.get_by_text("403: the bearer token is not the operator token")).to_be_visible()
    assert console.failed_loads_only()


def test_runs_are_listed_newest_first_with_their_state_and_filtered_by_status(
    page: Page, console: Console, console_api, history_seeded
):
    sign_in(page, console_api, history_seeded)
    rows = page.locator("tr.run")
    expect(rows).to_have_count(len(RUNS))
    assert rows.evaluate_all("rows => rows.map(r => r.dataset.jobId)") == [r[0] for r in RUNS][::-1]
    failed = rows.filter(has_text=FAILED)
    expect(failed.locator(".badge")).to_have_text("failed")
    expect(failed.locator(".badge")).to_have_class("badge state-failed")
    served = rows.filter(has_text=CATALOGUE_VERSION)
    expect(served).to_contain_text("17 min 0 s")
    expect(served.locator("td").nth(2)).to_have_text("schedule")  # beat's trigger, in the runbook's word
    expect(served).to_contain_text("27,960")  # rows out
    expect(served.locator(".bar.slow")).to_have_count(1)  # 17 min: over twice the 6 of its mode's other run
    expect(rows.filter(has_text=INCREMENTAL).locator(".bar.slow")).to_have_count(0)
    # a run an operator reopened says so beside the mode its work kept
    expect(rows.filter(has_text=INCREMENTAL).locator("td").nth(3)).to_have_text("incremental · retry ×2")
    expect(rows.filter(has_text=FULL).locator("td").nth(3)).to_have_text("full")
    # filtered by status
    page.get_by_label("Status").select_option("failed")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(FAILED)
    assert console.errors == []


def test_a_run_in_flight_is_followed_without_a_reload(page: Page, console: Console, console_api, history_seeded):
    sign_in(page, console_api, history_seeded)
    running = page.locator("tr.run").filter(has_text=RUNNING)
    expect(running.locator(".badge")).to_have_text("running")
    expect(page.get_by_text("following the run in flight")).to_be_visible()
    # when the run ends in the history
    conn = psycopg2.connect(history_seeded.metadata_dsn)
    with conn, conn.cursor() as cur:
        cur.execute("UPDATE run SET status = 'succeeded', finished_at = now() WHERE run_id = %s", (RUNNING,))
    conn.close()
    # then the list says so by itself
    expect(running.locator(".badge")).to_have_text("succeeded")
    expect(page.get_by_text("following the run in flight")).to_have_count(0)
    assert console.errors == []


def test_one_run_is_a_grid_of_its_batches_with_the_errors_and_log_lines_of_the_failed_ones(
    page: Page, console: Console, console_api, history_seeded
):
    logs = history_seeded.state_path / "logs"
    logs.mkdir(exist_ok=True)
    (logs / "worker-transform-console-ui.log").write_text(
        json.dumps({"timestamp": "2026-04-30T02:03:04Z", "level": "error", "event": "batch_dead", "run_id": FAILED})
        + "\n"
    )
    sign_in(page, console_api, history_seeded)
    page.get_by_role("link", name=FAILED).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Run {FAILED}")
    # one cell per batch and stage, coloured by state, the dead one among them
    cells = page.locator("button.cell")
    expect(cells).to_have_count(4 * 6 + 1)
    dead = page.locator('button.cell[data-stage="transform"][data-batch="3"]')
    expect(dead).to_have_class("cell state-dead")
    expect(page.locator('button.cell[data-stage="classify"][data-batch="3"]')).to_have_class("cell state-queued")
    dead.click()
    expect(page.locator("#cell-details")).to_have_text(
        "transform batch 3: dead · rows 1,000 → 990 · rejects 10 · attempts 3 · time 1 min 0 s · "
        "error: ArrowInvalid (dead-lettered after 3 attempts)"
    )
    # the failed batch's public error (no internals: no bucket, no message), and the stage totals
    expect(page.locator("ul.failed")).to_contain_text("transform batch 3 after 3 attempt(s): ArrowInvalid")
    expect(page.get_by_text("s3://")).to_have_count(0)
    expect(page.locator("table.totals tr").filter(has_text="transform")).to_contain_text("5")
    # and its log lines, as reviews logs --run shows them
    page.get_by_role("button", name="Show the run's log lines").click()
    expect(page.locator(".logs pre")).to_have_text(f"2026-04-30T02:03:04Z ERROR   batch_dead  run_id={FAILED}")
    page.locator('button.cell[data-stage="transform"][data-batch="3"]').hover()
    assert console.errors == []


def test_a_published_run_shows_what_it_changed_and_its_version(
    page: Page, console: Console, console_api, history_seeded
):
    sign_in(page, console_api, history_seeded, f"#/run/{FULL}")
    expect(page.locator(".facts")).to_contain_text(f"curated/review_curated_{FULL}.parquet (47,760 reviews, 30.0 MB)")
    expect(page.locator("ul.changes")).to_contain_text("23,760 added")
    expect(page.locator("ul.changes")).to_contain_text("2 erased")
    expect(page.locator("button.cell.state-succeeded")).to_have_count(4 * BATCHES + 1)
    # a run retried twice before it published says so beside its mode, and its version's size
    page.goto(f"{console_api.url}/console/#/run/{INCREMENTAL}")
    expect(page.locator(".facts")).to_contain_text("incremental · retry ×2 (the schedule)")
    expect(page.locator(".facts")).to_contain_text("(27,960 reviews, 31.0 MB)")
    assert console.errors == []


def test_actions_ask_for_confirmation_and_say_the_apis_answer(
    page: Page, console: Console, console_api, history_seeded, screenshot
):
    asked: list[str] = []
    decline = [False]

    def on_dialog(dialog: Dialog) -> None:
        asked.append(dialog.message)
        dialog.dismiss() if decline[0] else dialog.accept()

    page.on("dialog", on_dialog)
    # the retry of the failed run, the newest
    sign_in(page, console_api, history_seeded, f"#/run/{FAILED}")
    page.get_by_role("button", name="Retry the failed batches").click()
    expect(page.locator("#answer")).to_contain_text("202 Accepted: 1 batch(es) cleared, announced: transform batch 3")
    assert asked == [f"Retry run {FAILED}: clear its failed batches and re-run them and what follows?"]
    # a trigger, declined: nothing is sent
    page.get_by_role("link", name="Runs").click()
    page.get_by_label("Mode").select_option("full")
    page.get_by_label("Limit").fill("500")
    decline[0] = True
    page.get_by_role("button", name="Trigger a run").click()
    expect(page.locator("tr.run")).to_have_count(len(RUNS))
    # then confirmed: 202
    decline[0] = False
    page.get_by_role("button", name="Trigger a run").click()
    expect(page.locator("#answer")).to_contain_text("202 Accepted: run ")
    assert asked[1:] == ["Trigger a full run of at most 500 reviews?"] * 2
    expect(page.locator("tr.run")).to_have_count(len(RUNS) + 1)
    # a second trigger while it is queued: 409, said plainly
    page.get_by_role("button", name="Trigger a run").click()
    expect(page.locator("#answer")).to_contain_text("409: run ")
    expect(page.locator("#answer")).to_contain_text("is already queued or running")
    screenshot("409")
    # a token that is not the operator's: 403, said plainly
    page.get_by_label("Operator token").fill("not-the-token")
    page.get_by_role("button", name="Use").click()
    page.get_by_role("button", name="Trigger a run").click()
    expect(page.locator("#answer")).to_contain_text("403: the bearer token is not the operator token")
    assert console.failed_loads_only()


def test_health_at_a_glance_and_a_rollback(page: Page, console: Console, console_api, history_seeded):
    asked: list[str] = []
    page.on("dialog", accept(asked))
    sign_in(page, console_api, history_seeded, "#/health")
    expect(page.get_by_role("heading", name="Health at a glance")).to_be_visible()
    expect(page.locator(".card").first).to_contain_text(CATALOGUE_VERSION)
    expect(page.locator(".card").nth(1)).to_contain_text(INCREMENTAL)
    checks = page.locator("ul.checks li")
    expect(checks).to_have_count(4)
    expect(checks.filter(has_text="/health answers")).to_contain_text("ok")
    expect(checks.filter(has_text="The last run succeeded")).to_contain_text("critical")  # the failed run is the last
    expect(page.get_by_text("s3://", exact=False)).to_have_count(0)  # the error's class, not its message
    for rule in ("last_run", "run_duration", "retries_exhausted", "curated_age", "reject_share"):
        expect(page.locator(f'tr[data-rule="{rule}"]')).to_have_count(1)
    page.get_by_role("button", name=f"Roll back to {INCREMENTAL}").click()
    expect(page.locator("#answer")).to_contain_text(f"202 Accepted: rollback to {INCREMENTAL} requested")
    assert asked == [f"Serve {INCREMENTAL} instead of {CATALOGUE_VERSION}?"]
    assert console.errors == []


def test_the_audit_trail_shows_each_action_once_by_name(page: Page, console: Console, console_api, history_seeded):
    page.on("dialog", accept([]))
    sign_in(page, console_api, history_seeded, f"#/run/{FAILED}")
    page.get_by_role("button", name="Retry the failed batches").click()
    expect(page.locator("#answer")).to_contain_text("202 Accepted")
    page.get_by_role("link", name="Audit trail").click()
    rows = page.locator("table.audit tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("operator")
    expect(rows.first).to_contain_text("retry")
    expect(rows.first).to_contain_text(FAILED)
    expect(rows.first).to_contain_text("accepted: 1 batch(es) cleared")
    assert console.errors == []


def heartbeats(settings: Settings) -> None:
    """The extract worker beating, the classify worker silent for a minute (past the bound), no other worker."""
    conn = psycopg2.connect(settings.metadata_dsn)
    with conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO worker_heartbeat (worker, stage, host, pid, started_at, last_seen) VALUES "
            "('extract@host-a', 'extract', 'host-a', 41, now() - interval '1 h', now()), "
            "('classify@host-a', 'classify', 'host-a', 42, now() - interval '1 h', now() - interval '1 min')"
        )
    conn.close()


def test_health_shows_the_sizes_the_workers_and_rolls_back_to_any_kept_version(
    page: Page, console: Console, console_api, history_seeded
):
    heartbeats(history_seeded)
    asked: list[str] = []
    page.on("dialog", accept(asked))
    sign_in(page, console_api, history_seeded, "#/health")
    # the served and previous versions with their rows and bytes, and the served one's size said plainly
    cards = page.locator(".card")
    expect(cards.first).to_contain_text("12.0 MB")
    expect(cards.nth(1)).to_contain_text("27,960 reviews, 31.0 MB")
    expect(page.locator(".size-warning")).to_have_text(
        "Size: The served version is 61% smaller than the previous one (more than 50%): 12,000,000 bytes against "
        "31,000,000."
    )
    # each stage's workers: live, stale, none
    workers = page.locator("ul.workers li")
    expect(workers).to_have_count(6)
    expect(workers.filter(has_text="extract:")).to_contain_text("1 live (extract@host-a)")
    expect(workers.filter(has_text="classify:")).to_contain_text("no live worker: its work waits")
    expect(workers.filter(has_text="classify:")).to_contain_text("stale: classify@host-a silent for 1 min")
    expect(workers.filter(has_text="classify:").locator(".badge")).to_have_text("critical")
    expect(workers.filter(has_text="beat:")).to_contain_text("no live worker")
    # every kept version, the served one marked, each other with its own rollback
    kept = page.locator("table.kept tbody tr")
    expect(kept).to_have_count(3)
    assert kept.evaluate_all("rows => rows.map(r => r.dataset.version)") == [CATALOGUE_VERSION, INCREMENTAL, FULL]
    expect(kept.first.locator(".badge")).to_have_text("served")
    expect(kept.filter(has_text=FULL)).to_contain_text("30.0 MB")
    page.get_by_role("button", name=f"Roll back to {FULL}").click()
    expect(page.locator("#answer")).to_contain_text(f"202 Accepted: rollback to {FULL} requested")
    assert asked == [f"Serve {FULL} instead of {CATALOGUE_VERSION}?"]
    conn = psycopg2.connect(history_seeded.metadata_dsn)
    with conn, conn.cursor() as cur:
        cur.execute("SELECT run_id, kind, actor FROM run_request WHERE kind = 'rollback' ORDER BY request_id DESC")
        assert cur.fetchone() == (FULL, "rollback", "operator")
    conn.close()
    assert console.errors == []
