"""What the alert rules and the dashboards read of the run history."""

from __future__ import annotations

from dataclasses import dataclass

from shared.history.connections import Store


@dataclass(frozen=True)
class RunDuration:
    """A run's time (so far, when it runs) against the successful runs of its mode before it."""

    run_id: str
    mode: str | None
    status: str
    seconds: float
    baseline_s: float | None  # their mean; None without any
    baseline_runs: int


class Stats(Store):
    # A run's time, counted from its last retry when an operator retried it: the wait before is not the pipeline's.
    _TIMED = """
        SELECT r.run_id, r.mode, r.status, r.created_at, r.finished_at,
               extract(epoch FROM coalesce(r.finished_at, now()) - greatest(
                   r.started_at, (SELECT max(t.retried_at) FROM batch_retry t WHERE t.run_id = r.run_id)))::float
                   AS seconds,
               EXISTS (SELECT 1 FROM batch_retry t WHERE t.run_id = r.run_id) AS retried
        FROM run r WHERE r.status IN ('running', 'succeeded') AND r.started_at IS NOT NULL
    """

    def run_duration(self, runs: int) -> RunDuration | None:
        """The running run (the longest running) or else the last successful one, with the mean duration of
        the ``runs`` successful runs of the same mode before it (retried ones left out of the mean)."""
        with self._cursor() as cur:
            cur.execute(
                f"WITH timed AS ({self._TIMED}) SELECT * FROM timed "
                "ORDER BY status = 'running' DESC, CASE WHEN status = 'running' THEN seconds END DESC NULLS LAST, "
                "finished_at DESC LIMIT 1"
            )
            judged = cur.fetchone()
            if judged is None:
                return None
            cur.execute(
                f"WITH timed AS ({self._TIMED}) SELECT avg(seconds) AS mean, count(*) AS n FROM ("
                "SELECT seconds FROM timed WHERE status = 'succeeded' AND NOT retried AND run_id <> %(run)s "
                "AND created_at < %(created)s AND mode IS NOT DISTINCT FROM %(mode)s "
                "ORDER BY finished_at DESC LIMIT %(runs)s) recent",
                {"run": judged["run_id"], "created": judged["created_at"], "mode": judged["mode"], "runs": runs},
            )
            baseline = cur.fetchone()
        return RunDuration(
            judged["run_id"],
            judged["mode"],
            judged["status"],
            judged["seconds"],
            baseline["mean"] and float(baseline["mean"]),
            baseline["n"],
        )

    def exhausted_batches(self, within_h: float) -> list[dict]:
        """Batches of the runs created in the last ``within_h`` hours that gave up after their automatic
        retries: a transient error that outlasted them, or deliveries that kept dying (dead-lettered).
        A permanent error on the first try is not among them: nothing was retried."""
        with self._cursor() as cur:
            cur.execute(
                """
                SELECT b.run_id, b.stage, b.batch_no, b.attempts, b.retries, b.last_error, r.status AS run_status
                FROM batch b JOIN run r USING (run_id)
                WHERE b.status = 'dead' AND (b.retries > 0 OR b.attempts > 1)
                  AND r.created_at > now() - make_interval(secs => %s)
                ORDER BY r.created_at DESC, b.stage, b.batch_no
                """,
                (within_h * 3600,),
            )
            return cur.fetchall()

    def run_counts(self) -> dict[str, int]:
        """Runs in the history by status (every status, zero included)."""
        with self._cursor() as cur:
            cur.execute("SELECT status, count(*) AS n FROM run GROUP BY status")
            counts = {row["status"]: row["n"] for row in cur.fetchall()}
        return {status: counts.get(status, 0) for status in ("queued", "running", "succeeded", "failed")}

    def last_finished_run(self) -> dict | None:
        """The run that ended last, succeeded or failed."""
        with self._cursor() as cur:
            cur.execute(
                "SELECT * FROM run WHERE status IN ('succeeded', 'failed') ORDER BY finished_at DESC NULLS LAST LIMIT 1"
            )
            return cur.fetchone()
