"""Run history on the real PostgreSQL: the completion barrier, attempts, one active run per date."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor

import psycopg2
import pytest
from psycopg2 import sql

from shared.history import History
from shared.history.batches import BatchDead
from shared.history.runs import RunAlreadyActive
from shared.history.schema import SCHEMA, init_metadata_db
from shared.stages import Stage
from shared.tasks import TRANSIENT_ERRORS


def columns(settings) -> list[tuple[str, str]]:
    """Every column of the metadata database's own tables, with its type."""
    conn = psycopg2.connect(settings.metadata_dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(
                "SELECT table_name || '.' || column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = 'public' ORDER BY 1"
            )
            return cur.fetchall()
    finally:
        conn.close()


def test_init_is_idempotent(servers, history, logical_date):
    # given a database in use, with a run recorded
    run_id = history.create_run("cli", {"kept": True}, logical_date)
    recorded, schema = history.get_run(run_id), columns(servers)
    # when it is initialised again, twice
    init_metadata_db(servers)
    init_metadata_db(servers)
    # then neither its tables nor what they hold changed
    assert columns(servers) == schema and schema
    assert history.get_run(run_id) == recorded


def _columns(conn, table: str) -> set[str]:
    with conn.cursor() as cur:
        cur.execute("SELECT column_name FROM information_schema.columns WHERE table_name = %s", (table,))
        return {row[0] for row in cur.fetchall()}


def test_a_database_made_before_the_migrations_gains_their_columns(servers):
    # given a metadata database whose tables were made by the base schema alone, with a run in it
    settings = servers.model_copy(update={"metadata_db": "history_before_migrations"})
    admin = psycopg2.connect(settings.postgres_admin_dsn)
    admin.autocommit = True
    name, owner = sql.Identifier(settings.metadata_db), sql.Identifier(settings.metadata_user)
    try:
        with admin.cursor() as cur:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(name))
            cur.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(name, owner))
        conn = psycopg2.connect(settings.metadata_dsn)
        try:
            with conn, conn.cursor() as cur:
                cur.execute(SCHEMA)
                cur.execute("INSERT INTO run (run_id, logical_date, trigger) VALUES ('old', '2000-01-01', 'cli')")
            assert "mode" not in _columns(conn, "run") and "cursor_ts" not in _columns(conn, "batch")

            # when the metadata database is initialised
            init_metadata_db(settings)

            # then its tables gain the migrated columns and keep their rows
            assert {
                "mode",
                "mode_reason",
                "base_version",
                "watermark_from",
                "watermark_from_id",
                "watermark_to",
                "watermark_to_id",
                "watermark_cap",
                "model_fingerprint",
                "changes",
            } <= _columns(conn, "run")
            assert "cursor_ts" in _columns(conn, "batch")
            with conn, conn.cursor() as cur:
                cur.execute("SELECT run_id, mode FROM run")
                assert cur.fetchall() == [("old", None)]
        finally:
            conn.close()
    finally:
        with admin.cursor() as cur:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(name))
        admin.close()


def test_barrier_fires_exactly_once_with_hundreds_of_concurrent_batches(history: History, logical_date):
    # given a run of 400 batches whose classify steps finish in random order on 12 threads,
    # while extraction is still being recorded
    run_id = history.create_run("cli", {}, logical_date)
    history.start_run(run_id)
    batches = list(range(1, 401))
    random.Random(7).shuffle(batches)

    def classify(n: int) -> bool:
        history.begin_batch(run_id, Stage.CLASSIFY, n, 3)
        history.finish_batch(run_id, Stage.CLASSIFY, n, rows_in=10, rows_out=10, output_key=f"k{n}")
        if n == batches[200]:  # extraction ends half-way through classification
            history.set_extracted(run_id, len(batches), 4000)
        return history.claim_publish(run_id)

    # when every batch tries the barrier after committing its own status
    with ThreadPoolExecutor(max_workers=12) as pool:
        fired = list(pool.map(classify, batches))

    # then publish is claimed exactly once, and never again
    assert sum(fired) == 1
    assert history.claim_publish(run_id) is False


def test_barrier_waits_for_extraction_to_finish(history: History, logical_date):
    run_id = history.create_run("cli", {}, logical_date)
    history.start_run(run_id)
    history.finish_batch(run_id, Stage.CLASSIFY, 1, rows_in=1, rows_out=1)
    assert history.claim_publish(run_id) is False  # more batches may still come
    history.set_extracted(run_id, 1, 1)
    assert history.claim_publish(run_id) is True


def test_an_extraction_that_recovered_from_retries_shows_no_stage_retrying(history: History, logical_date):
    run_id = history.create_run("cli", {}, logical_date)
    history.start_run(run_id)
    for _ in range(2):  # the source was unreachable twice: the extraction task's retries are batch 0's
        history.retry_batch(run_id, Stage.EXTRACT, 0, "OperationalError('the source is down')")
    history.finish_batch(run_id, Stage.EXTRACT, 1, rows_in=10, rows_out=10, output_key="raw/1")
    assert history.set_extracted(run_id, 1, 10) == 2
    summary = history.stage_summary(run_id)["extract"]
    assert summary["retrying"] == 0 and summary["succeeded"] == 1
    assert [b["batch_no"] for b in history.extracted_batches(run_id)] == [1]


def test_a_batch_that_keeps_dying_is_dead_lettered(history: History, logical_date):
    # given a batch whose deliveries start and never finish (the worker dies each time)
    run_id = history.create_run("cli", {}, logical_date)
    for attempt in range(1, 4):
        assert history.begin_batch(run_id, Stage.TRANSFORM, 1, max_attempts=3).attempts == attempt
    # when it is delivered once more, then it is dead-lettered instead of processed
    with pytest.raises(BatchDead):
        history.begin_batch(run_id, Stage.TRANSFORM, 1, max_attempts=3)
    (batch,) = history.batches(run_id, Stage.TRANSFORM)
    assert batch["status"] == "dead" and "dead-lettered after 3 attempts" in batch["last_error"]
    # and a later redelivery is told the batch is finished with, not run again
    assert history.begin_batch(run_id, Stage.TRANSFORM, 1, max_attempts=3).already_done


def test_scheduled_retries_do_not_count_towards_the_poison_limit(history: History, logical_date):
    run_id = history.create_run("cli", {}, logical_date)
    for _ in range(5):
        history.begin_batch(run_id, Stage.ARCHIVE, 1, max_attempts=2)
        history.retry_batch(run_id, Stage.ARCHIVE, 1, "ServerSelectionTimeoutError")
    start = history.begin_batch(run_id, Stage.ARCHIVE, 1, max_attempts=2)
    assert start.attempts == 6 and not start.already_done


def test_a_finished_batch_is_not_done_twice(history: History, logical_date):
    run_id = history.create_run("cli", {}, logical_date)
    history.begin_batch(run_id, Stage.CLASSIFY, 1, 3)
    history.finish_batch(run_id, Stage.CLASSIFY, 1, rows_in=5, rows_out=5, output_key="scored/x")
    assert history.begin_batch(run_id, Stage.CLASSIFY, 1, 3).already_done


def test_two_triggers_of_the_same_date_do_not_run_at_once(history: History, logical_date):
    first = history.create_run("beat", {}, logical_date)
    with pytest.raises(RunAlreadyActive) as raised:
        history.create_run("cli", {}, logical_date)
    assert raised.value.run_id == first
    # once the first has ended, the date can run again
    history.fail_run(first, "test")
    assert history.create_run("api", {}, logical_date) != first


def test_a_connection_the_server_drops_raises_the_transient_error_a_task_retries(history: History):
    # given a history call whose connection the server ends mid-transaction (as when PostgreSQL restarts)
    with pytest.raises(Exception) as raised, history._cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(pg_backend_pid())")
    # then the error says the server went away, which StageTask retries, and the next call works
    assert isinstance(raised.value, TRANSIENT_ERRORS), repr(raised.value)
    assert history.get_run("no-such-run") is None


def test_connections_are_kept_and_one_the_server_drops_is_replaced_unseen(servers):
    history = History(servers.metadata_dsn)

    def backend() -> int:
        with history._cursor() as cur:
            cur.execute("SELECT pg_backend_pid() AS pid")
            return cur.fetchone()["pid"]

    try:
        # given calls that reuse one connection, not a new one each (connecting costs ~16 queries)
        first = backend()
        assert backend() == first
        # when the server ends that connection while it is idle, as a restart does
        other = psycopg2.connect(servers.metadata_dsn)
        try:
            other.autocommit = True
            other.cursor().execute("SELECT pg_terminate_backend(%s)", (first,))
        finally:
            other.close()
        # then the next call works, on a new connection
        assert backend() != first
    finally:
        history.close()
