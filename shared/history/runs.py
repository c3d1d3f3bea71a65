"""Runs: created by a trigger, one active per logical date; their plan, extraction, the completion barrier
that fires ``publish`` exactly once, their end, and an operator's reopening of a failed one.

The barrier is a conditional UPDATE on the run row, not a Celery chord (chords on Redis are
known to lose callbacks with many header tasks).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, date, datetime

import psycopg2
import psycopg2.extras

from shared.history.connections import Store
from shared.plan import Plan, Watermark, plan_of
from shared.stages import Stage

# An operator's retry logs every batch it clears in one transaction, so at one retried_at: one time per retry.
_RETRIES = "(SELECT count(DISTINCT retried_at) FROM batch_retry r WHERE r.run_id = run.run_id) AS retries"


class RunAlreadyActive(Exception):
    def __init__(self, run_id: str, logical_date: date):
        super().__init__(f"run {run_id} for {logical_date} is already queued or running")
        self.run_id = run_id
        self.logical_date = logical_date


class RunNotFound(LookupError):
    def __init__(self, run_id: str):
        super().__init__(f"no run {run_id!r}")


def new_run_id(now: datetime | None = None) -> str:
    # Sortable by time: curated versions named after run ids sort oldest first.
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


class Runs(Store):
    def create_run(self, trigger: str, params: dict | None = None, logical_date: date | None = None) -> str:
        """A queued run; its trigger then announces its extraction (shared.flow.start_run)."""
        return self._insert_run(
            "INSERT INTO run (run_id, logical_date, trigger, params) "
            "VALUES (%(run)s, %(date)s, %(trigger)s, %(params)s)",
            trigger,
            params,
            logical_date,
        )

    def request_run(self, params: dict | None = None, logical_date: date | None = None) -> str:
        """The API's run: queued with a request the extract worker claims (shared/run_requests.py)."""
        return self._insert_run("SELECT request_run(%(run)s, %(date)s, %(params)s)", "api", params, logical_date)

    def _insert_run(self, statement: str, trigger: str, params: dict | None, logical_date: date | None) -> str:
        logical_date = logical_date or datetime.now(UTC).date()
        run_id = new_run_id()
        values = {"run": run_id, "date": logical_date, "trigger": trigger, "params": psycopg2.extras.Json(params or {})}
        try:
            with self._cursor() as cur:
                cur.execute(statement, values)
        except psycopg2.errors.UniqueViolation:
            raise self._already_active(logical_date) from None
        return run_id

    def _already_active(self, logical_date: date) -> RunAlreadyActive:
        with self._cursor() as cur:
            cur.execute(
                "SELECT run_id FROM run WHERE logical_date = %s AND status IN ('queued', 'running')", (logical_date,)
            )
            row = cur.fetchone()
        return RunAlreadyActive(row["run_id"] if row else "?", logical_date)

    def get_run(self, run_id: str) -> dict | None:
        """The run's row, with ``retries``: how many times an operator reopened it."""
        with self._cursor() as cur:
            cur.execute(f"SELECT run.*, {_RETRIES} FROM run WHERE run_id = %s", (run_id,))
            return cur.fetchone()

    def list_runs(self, limit: int = 20) -> list[dict]:
        """The newest runs, as ``get_run`` gives them."""
        with self._cursor() as cur:
            cur.execute(f"SELECT run.*, {_RETRIES} FROM run ORDER BY created_at DESC LIMIT %s", (limit,))
            return cur.fetchall()

    def start_run(self, run_id: str) -> None:
        with self._cursor() as cur:
            cur.execute(
                "UPDATE run SET status = 'running', started_at = coalesce(started_at, now()) "
                "WHERE run_id = %s AND status IN ('queued', 'running')",
                (run_id,),
            )

    def set_plan(self, run_id: str, plan: Plan) -> Plan:
        """Record the run's plan once and return the recorded one: a retried extraction keeps its first."""
        since = plan.since or (None, None)
        with self._cursor() as cur:
            cur.execute(
                "UPDATE run SET mode = %s, mode_reason = %s, base_version = %s, watermark_from = %s, "
                "watermark_from_id = %s WHERE run_id = %s AND mode IS NULL",
                (plan.mode, plan.reason, plan.base_version, since[0], since[1], run_id),
            )
            cur.execute("SELECT * FROM run WHERE run_id = %s", (run_id,))
            return plan_of(cur.fetchone())

    def cap_watermark(self, run_id: str, cap: datetime) -> None:
        """The run's watermark may not pass ``cap`` (the earliest, when a retried extraction read again)."""
        with self._cursor() as cur:
            cur.execute(
                "UPDATE run SET watermark_cap = least(coalesce(watermark_cap, %(cap)s), %(cap)s) "
                "WHERE run_id = %(run)s",
                {"cap": cap, "run": run_id},
            )

    def set_extracted(self, run_id: str, batches: int, rows: int, watermark: Watermark | None = None) -> int:
        """Extraction is complete: the barrier may count, and the next run reads after ``watermark``.

        Returns how many times the extraction task was retried. The task is held, and its retries recorded, as
        extract batch 0 (the task, not a page); that row goes, or the run would show the stage busy forever.
        """
        to = watermark or (None, None)
        with self._cursor() as cur:
            cur.execute(
                "UPDATE run SET extracted_batches = %s, source_rows = %s, watermark_to = %s, watermark_to_id = %s "
                "WHERE run_id = %s",
                (batches, rows, to[0], to[1], run_id),
            )
            return _end_extraction_task(cur, run_id)

    def end_extraction_task(self, run_id: str) -> int:
        """The extraction task ended without completing the extraction (the run no longer running, an empty
        source): its batch 0 goes, as ``set_extracted`` removes it; returns its retries."""
        with self._cursor() as cur:
            return _end_extraction_task(cur, run_id)

    def claim_publish(self, run_id: str) -> bool:
        """The completion barrier: True for exactly one caller, once every batch is classified.

        Callers commit their own batch's status first and call this afterwards: the
        last batch to commit then sees every other one, so the barrier cannot be missed,
        and ``publish_requested_at IS NULL`` under the row lock makes it fire at most once.
        """
        with self._cursor() as cur:
            cur.execute("SELECT claim_publish(%s) AS claimed", (run_id,))
            return cur.fetchone()["claimed"]

    def finish_run(
        self,
        run_id: str,
        curated_key: str,
        curated_rows: int,
        model_fingerprint: str | None = None,
        changes: dict | None = None,
        curated_bytes: int | None = None,
    ) -> None:
        with self._cursor() as cur:
            cur.execute(
                "UPDATE run SET status = 'succeeded', finished_at = now(), curated_key = %s, curated_rows = %s, "
                "curated_bytes = %s, model_fingerprint = %s, changes = %s, error = NULL WHERE run_id = %s",
                (
                    curated_key,
                    curated_rows,
                    curated_bytes,
                    model_fingerprint,
                    None if changes is None else psycopg2.extras.Json(changes),
                    run_id,
                ),
            )

    def fail_run(self, run_id: str, error: str) -> None:
        with self._cursor() as cur:
            cur.execute(
                "UPDATE run SET status = 'failed', finished_at = now(), error = %s "
                "WHERE run_id = %s AND status IN ('queued', 'running')",
                (error[:2000], run_id),
            )

    def stalled_runs(self, older_than_s: int) -> list[dict]:
        """Running runs with no batch activity for ``older_than_s`` (a lease renewed counts): what the sweep repairs."""
        with self._cursor() as cur:
            cur.execute(
                """
                SELECT r.* FROM run r
                WHERE r.status = 'running' AND r.started_at < now() - make_interval(secs => %(s)s)
                  AND NOT EXISTS (SELECT 1 FROM batch b WHERE b.run_id = r.run_id
                                  AND greatest(b.started_at, b.finished_at, b.lease_until)
                                      > now() - make_interval(secs => %(s)s))
                  AND NOT EXISTS (SELECT 1 FROM batch_retry t WHERE t.run_id = r.run_id
                                  AND t.retried_at > now() - make_interval(secs => %(s)s))
                """,
                {"s": older_than_s},
            )
            return cur.fetchall()

    # --- an operator's retry of a failed run ------------------------------------------------------

    def reopen_run(
        self,
        run_id: str,
        trigger: str,
        choose: Callable[[dict, dict | None, list[dict]], list[tuple[Stage, int]]],
        request: bool = False,
    ) -> list[dict]:
        """Put a failed run back to running with the batches ``choose`` picks cleared, in one transaction.

        ``choose(run, later_run, batches)`` sees the run and its batches locked (``later_run``: a run
        created after it that is active or succeeded, or None) and raises to refuse; ``RunAlreadyActive`` when
        another run of the same logical date is active.
        Each cleared batch is logged in ``batch_retry`` as it was, then deleted: its stage then does it
        afresh, with a fresh attempt budget. Publish is claimed when only it had failed. ``request`` (the API,
        as trigger "api"): with a request the extract worker claims to announce them. Returns the cleared rows.
        """
        try:
            with self._cursor() as cur:
                cur.execute("SELECT lock_run_for_retry(%s)", (run_id,))
                cur.execute("SELECT * FROM run WHERE run_id = %s", (run_id,))
                run = cur.fetchone()
                if run is None:
                    raise RunNotFound(run_id)
                cur.execute(
                    "SELECT run_id, status FROM run WHERE created_at > %s AND status IN ('queued', 'running', "
                    "'succeeded') ORDER BY created_at DESC LIMIT 1",
                    (run["created_at"],),
                )
                later = cur.fetchone()
                cur.execute("SELECT * FROM batch WHERE run_id = %s ORDER BY stage, batch_no", (run_id,))
                keys = choose(run, later, cur.fetchall())
                stages, numbers = [stage.value for stage, _ in keys], [n for _, n in keys]
                if request:
                    cur.execute("SELECT * FROM request_retry(%s, %s, %s)", (run_id, stages, numbers))
                else:
                    cur.execute("SELECT * FROM reopen_failed_run(%s, %s, %s, %s)", (run_id, trigger, stages, numbers))
                cleared = cur.fetchall()
        except psycopg2.errors.UniqueViolation:  # run_one_active_per_date
            raise self._already_active(run["logical_date"]) from None
        return sorted(cleared, key=lambda b: (list(Stage).index(Stage(b["stage"])), b["batch_no"]))

    def request_rollback(self, run_id: str, actor: str) -> None:
        """The API's rollback to the version ``run_id`` published: a request the publish worker claims
        (shared/run_requests.py); RunNotFound when no successful run of that id published one."""
        try:
            with self._cursor() as cur:
                cur.execute("SELECT request_rollback(%s, %s)", (run_id, actor))
        except psycopg2.errors.NoDataFound:
            raise RunNotFound(run_id) from None

    def claim_request(self, handle: Callable[[dict], None], kinds: tuple[str, ...]) -> dict | None:
        """Hand the oldest unclaimed run request of one of ``kinds`` to ``handle`` and mark it claimed, in one
        transaction; None when there is none. A request another caller holds is skipped (SKIP LOCKED): each is
        claimed once. ``handle`` runs before the claim commits: when it raises, the request stays for the next
        call."""
        with self._cursor() as cur:
            cur.execute(
                "SELECT * FROM run_request WHERE claimed_at IS NULL AND kind = ANY(%s) ORDER BY request_id LIMIT 1 "
                "FOR UPDATE SKIP LOCKED",
                (list(kinds),),
            )
            request = cur.fetchone()
            if request is not None:
                handle(request)
                cur.execute("UPDATE run_request SET claimed_at = now() WHERE request_id = %s", (request["request_id"],))
        return request

    def retried_at(self, run_id: str, at: datetime) -> list[dict]:
        """The batches one retry cleared: its ``batch_retry`` rows, all stamped with its transaction's time."""
        with self._cursor() as cur:
            cur.execute("SELECT * FROM batch_retry WHERE run_id = %s AND retried_at = %s", (run_id, at))
            return cur.fetchall()

    def retries(self, run_id: str) -> list[dict]:
        """What operators cleared for a re-run in this run, oldest first."""
        with self._cursor() as cur:
            cur.execute("SELECT * FROM batch_retry WHERE run_id = %s ORDER BY retried_at, stage, batch_no", (run_id,))
            return cur.fetchall()


def _end_extraction_task(cur, run_id: str) -> int:
    cur.execute(
        "DELETE FROM batch WHERE run_id = %s AND stage = 'extract' AND batch_no = 0 "
        "AND status IN ('running', 'retrying') RETURNING retries",
        (run_id,),
    )
    return sum(row["retries"] for row in cur.fetchall())
