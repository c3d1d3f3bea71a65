"""Batches: each stage's one row per batch (status, attempts, timings, rows in/out, rejects, last error)."""

from __future__ import annotations

from dataclasses import dataclass

from shared.history.connections import Store
from shared.plan import Watermark
from shared.stages import Stage


class BatchDead(Exception):
    """A batch exceeded its attempt limit: it is dead-lettered, not requeued again."""


@dataclass(frozen=True)
class BatchStart:
    """What ``begin_batch`` decided: go on, skip a delivery whose work is already done, or skip one that
    found the batch held by a live worker (``held``: that worker's name)."""

    attempts: int
    already_done: bool
    held: str | None = None


# Where a batch's holder is named: its worker's name and its process.
_HOLDER = "coalesce(worker, '?') || coalesce(' pid ' || worker_pid, '')"


class Batches(Store):
    def begin_batch(
        self,
        run_id: str,
        stage: Stage,
        batch_no: int,
        max_attempts: int,
        input_key: str | None = None,
        worker: str | None = None,
        pid: int | None = None,
        lease_s: float = 0,
    ) -> BatchStart:
        """Record a delivery starting work, held by ``worker`` (process ``pid``) for ``lease_s`` unless renewed;
        dead-letter a batch that keeps dying mid-work.

        A batch another delivery holds under a lease that has not run out is left to it (``held``): a slow
        batch is never worked twice at once. One whose lease ran out is taken over, and its dead holder
        logged in ``batch_lost``. ``lease_s`` 0: not held at all (a worker that died as it began).
        Raises ``BatchDead`` once more deliveries started than ended, beyond the limit:
        a poisoned batch (one that kills its worker) must not be requeued forever.
        """
        key = {"run": run_id, "stage": stage.value, "n": batch_no}
        with self._cursor() as cur:
            cur.execute(
                """
                INSERT INTO batch (run_id, stage, batch_no, status, attempts, started_at, input_key, worker)
                VALUES (%(run)s, %(stage)s, %(n)s, 'running', 0, now(), %(key)s, %(worker)s)
                ON CONFLICT (run_id, stage, batch_no) DO NOTHING
                """,
                {**key, "key": input_key, "worker": worker},
            )
            cur.execute(
                f"SELECT status, attempts, retries, lease_until > now() AS held, {_HOLDER} AS holder, "
                "lease_until IS NOT NULL AS leased FROM batch "
                "WHERE run_id = %(run)s AND stage = %(stage)s AND batch_no = %(n)s FOR UPDATE",
                key,
            )
            row = cur.fetchone()
            if row["status"] in ("succeeded", "dead"):
                return BatchStart(row["attempts"], already_done=True)
            if row["status"] == "running" and row["held"]:
                return BatchStart(row["attempts"], already_done=False, held=row["holder"])
            if row["status"] == "lost" or (row["status"] == "running" and row["leased"]):
                self._log_takeover(cur, key, row["attempts"], worker, pid)
            attempts = row["attempts"] + 1
            if attempts - row["retries"] > max_attempts:
                cur.execute(
                    "UPDATE batch SET status = 'dead', finished_at = now(), lease_until = NULL, "
                    "last_error = coalesce(last_error, '') || %(err)s "
                    "WHERE run_id = %(run)s AND stage = %(stage)s AND batch_no = %(n)s",
                    {**key, "err": f" [dead-lettered after {attempts - 1} attempts]"},
                )
                dead = True
            else:
                dead = False
                cur.execute(
                    "UPDATE batch SET status = 'running', attempts = %(attempts)s, started_at = now(), "
                    "finished_at = NULL, worker = coalesce(%(worker)s, worker), worker_pid = %(pid)s, "
                    "input_key = coalesce(%(key)s, input_key), "
                    "lease_until = CASE WHEN %(lease)s > 0 THEN now() + make_interval(secs => %(lease)s) END "
                    "WHERE run_id = %(run)s AND stage = %(stage)s AND batch_no = %(n)s",
                    {**key, "attempts": attempts, "worker": worker, "pid": pid, "key": input_key, "lease": lease_s},
                )
        if dead:  # raised after the commit: the dead-letter mark must stick
            raise BatchDead(f"{stage.value} batch {batch_no} of run {run_id}: {attempts - 1} attempts died")
        return BatchStart(attempts, already_done=False)

    @staticmethod
    def _log_takeover(cur, key: dict, attempt: int, worker: str | None, pid: int | None) -> None:
        """The delivery ``attempt`` died holding the batch: log it (if the lease check has not) and who takes over."""
        cur.execute(
            """
            INSERT INTO batch_lost (run_id, stage, batch_no, attempt, worker, worker_pid, started_at, lease_until,
                                    taken_over_at, taken_over_by, taken_over_pid)
            SELECT run_id, stage, batch_no, attempts, worker, worker_pid, started_at, lease_until,
                   now(), %(worker)s, %(pid)s
            FROM batch WHERE run_id = %(run)s AND stage = %(stage)s AND batch_no = %(n)s
            ON CONFLICT (run_id, stage, batch_no, attempt) DO UPDATE
            SET taken_over_at = now(), taken_over_by = %(worker)s, taken_over_pid = %(pid)s
            """,
            {**key, "attempt": attempt, "worker": worker, "pid": pid},
        )

    def renew_lease(self, run_id: str, stage: Stage, batch_no: int, attempt: int, lease_s: float) -> bool:
        """Hold the batch ``lease_s`` longer; False once this delivery no longer holds it (ended, or taken over)."""
        with self._cursor() as cur:
            cur.execute(
                "UPDATE batch SET lease_until = now() + make_interval(secs => %s) "
                "WHERE run_id = %s AND stage = %s AND batch_no = %s AND attempts = %s AND status = 'running' "
                "AND lease_until IS NOT NULL",
                (lease_s, run_id, stage.value, batch_no, attempt),
            )
            return cur.rowcount == 1

    def release_lease(self, run_id: str, stage: Stage, batch_no: int, attempt: int) -> None:
        """The delivery ``attempt`` stopped working without finishing (an error: its retry or failure is recorded
        next): the batch is no longer held, and its next delivery takes it without counting a death."""
        with self._cursor() as cur:
            cur.execute(
                "UPDATE batch SET lease_until = NULL WHERE run_id = %s AND stage = %s AND batch_no = %s "
                "AND attempts = %s AND status = 'running'",
                (run_id, stage.value, batch_no, attempt),
            )

    def lose_expired_leases(self) -> list[dict]:
        """Mark every batch whose holder stopped renewing its lease ``lost`` and log it in ``batch_lost``; returns
        those batches (each once, whoever else checks at the same time), to be announced again."""
        with self._cursor() as cur:
            cur.execute(
                """
                WITH lost AS (
                    UPDATE batch SET status = 'lost', last_error = 'the worker holding it died'
                    WHERE status = 'running' AND lease_until < now()
                    RETURNING run_id, stage, batch_no, attempts, worker, worker_pid, started_at, lease_until, input_key
                ), logged AS (
                    INSERT INTO batch_lost (run_id, stage, batch_no, attempt, worker, worker_pid, started_at,
                                            lease_until)
                    SELECT run_id, stage, batch_no, attempts, worker, worker_pid, started_at, lease_until FROM lost
                    ON CONFLICT DO NOTHING
                )
                SELECT * FROM lost ORDER BY run_id, stage, batch_no
                """
            )
            return cur.fetchall()

    def lost_batches(self, run_ids: list[str]) -> list[dict]:
        """The deliveries of these runs whose worker died mid-batch, oldest first."""
        with self._cursor() as cur:
            cur.execute(
                "SELECT * FROM batch_lost WHERE run_id = ANY(%s) ORDER BY run_id, noticed_at, stage, batch_no",
                (list(run_ids),),
            )
            return cur.fetchall()

    def finish_batch(
        self,
        run_id: str,
        stage: Stage,
        batch_no: int,
        *,
        rows_in: int,
        rows_out: int,
        rejects: int = 0,
        output_key: str | None = None,
        cursor: Watermark | None = None,
    ) -> None:
        with self._cursor() as cur:
            cur.execute(
                """
                INSERT INTO batch (run_id, stage, batch_no, status, attempts, started_at)
                VALUES (%(run)s, %(stage)s, %(n)s, 'running', 1, now())
                ON CONFLICT (run_id, stage, batch_no) DO NOTHING;
                UPDATE batch SET status = 'succeeded', finished_at = now(), rows_in = %(rin)s, rows_out = %(rout)s,
                       rejects = %(rej)s, output_key = %(key)s, cursor = %(cursor)s, cursor_ts = %(cursor_ts)s,
                       last_error = NULL, lease_until = NULL
                WHERE run_id = %(run)s AND stage = %(stage)s AND batch_no = %(n)s
                """,
                {
                    "run": run_id,
                    "stage": stage.value,
                    "n": batch_no,
                    "rin": rows_in,
                    "rout": rows_out,
                    "rej": rejects,
                    "key": output_key,
                    "cursor": cursor and cursor.review_id,
                    "cursor_ts": cursor and cursor.updated_at,
                },
            )

    def retry_batch(self, run_id: str, stage: Stage, batch_no: int, error: str) -> None:
        with self._cursor() as cur:
            cur.execute(
                """
                INSERT INTO batch (run_id, stage, batch_no, status, attempts, retries, started_at, last_error)
                VALUES (%(run)s, %(stage)s, %(n)s, 'retrying', 1, 1, now(), %(err)s)
                ON CONFLICT (run_id, stage, batch_no) DO UPDATE
                SET status = 'retrying', retries = batch.retries + 1, last_error = %(err)s, lease_until = NULL
                """,
                {"run": run_id, "stage": stage.value, "n": batch_no, "err": error[:2000]},
            )

    def kill_batch(self, run_id: str, stage: Stage, batch_no: int, error: str) -> None:
        """A permanent failure: recorded as dead, never retried."""
        with self._cursor() as cur:
            cur.execute(
                """
                INSERT INTO batch (run_id, stage, batch_no, status, attempts, started_at)
                VALUES (%(run)s, %(stage)s, %(n)s, 'dead', 1, now())
                ON CONFLICT (run_id, stage, batch_no) DO UPDATE
                SET status = 'dead', finished_at = now(), last_error = %(err)s, lease_until = NULL
                """,
                {"run": run_id, "stage": stage.value, "n": batch_no, "err": error[:2000]},
            )

    def extracted_batches(self, run_id: str) -> list[dict]:
        """The run's extract batches that completed, in order (the resume point of a retry)."""
        with self._cursor() as cur:
            cur.execute(
                "SELECT batch_no, output_key, cursor, cursor_ts, rows_out FROM batch "
                "WHERE run_id = %s AND stage = 'extract' AND status = 'succeeded' ORDER BY batch_no",
                (run_id,),
            )
            return cur.fetchall()

    def batches(self, run_id: str, stage: Stage | None = None) -> list[dict]:
        with self._cursor() as cur:
            cur.execute(
                "SELECT * FROM batch WHERE run_id = %s AND (%s::text IS NULL OR stage = %s) ORDER BY stage, batch_no",
                (run_id, stage and stage.value, stage and stage.value),
            )
            return cur.fetchall()

    def batch_grid(self, run_id: str, limit: int) -> list[dict]:
        """A run's batches by stage then number, at most ``limit``, with only what the console's grid shows."""
        with self._cursor() as cur:
            cur.execute(
                "SELECT stage, batch_no, status, attempts, rows_in, rows_out, rejects, "
                "extract(epoch FROM finished_at - started_at)::float AS seconds, last_error "
                "FROM batch WHERE run_id = %s ORDER BY stage, batch_no LIMIT %s",
                (run_id, limit),
            )
            return cur.fetchall()

    def stage_summary(self, run_id: str) -> dict[str, dict]:
        """Per stage: batches by status (lost: its worker died, announced again), rows in/out, rejects, attempts
        and busy seconds."""
        return self.stage_summaries([run_id]).get(run_id, {})

    def stage_summaries(self, run_ids: list[str]) -> dict[str, dict[str, dict]]:
        """``stage_summary`` of each of these runs, in one query: a page of runs costs one round trip, not
        one per run. A run with no batch yet is absent."""
        with self._cursor() as cur:
            cur.execute(
                """
                SELECT run_id, stage,
                       count(*) FILTER (WHERE status = 'succeeded') AS succeeded,
                       count(*) FILTER (WHERE status = 'running') AS running,
                       count(*) FILTER (WHERE status = 'retrying') AS retrying,
                       count(*) FILTER (WHERE status = 'dead') AS dead,
                       count(*) FILTER (WHERE status = 'lost') AS lost,
                       coalesce(sum(rows_in), 0) AS rows_in, coalesce(sum(rows_out), 0) AS rows_out,
                       coalesce(sum(rejects), 0) AS rejects, coalesce(sum(attempts), 0) AS attempts,
                       coalesce(sum(extract(epoch FROM finished_at - started_at)), 0)::float AS busy_s,
                       min(started_at) AS first_started, max(finished_at) AS last_finished,
                       max(last_error) FILTER (WHERE status <> 'succeeded') AS last_error
                FROM batch WHERE run_id = ANY(%s) GROUP BY run_id, stage
                """,
                (list(run_ids),),
            )
            summaries: dict[str, dict[str, dict]] = {}
            for row in cur.fetchall():
                summaries.setdefault(row.pop("run_id"), {})[row.pop("stage")] = row
            return summaries

    def archive_backlog(self) -> int:
        """Extracted batches whose archive is still to do: not started, running or retrying."""
        with self._cursor() as cur:
            cur.execute(
                """
                SELECT count(*) AS n FROM batch e
                WHERE e.stage = 'extract' AND e.status = 'succeeded'
                  AND NOT EXISTS (SELECT 1 FROM batch a WHERE a.run_id = e.run_id AND a.stage = 'archive'
                                  AND a.batch_no = e.batch_no AND a.status IN ('succeeded', 'dead'))
                """
            )
            return cur.fetchone()["n"]
