"""The workers' heartbeats: each worker's last sign of life, so the API knows which stages have a live worker
without a broker (shared/heartbeats.py writes them)."""

from __future__ import annotations

from datetime import datetime

from shared.history.connections import Store


class Workers(Store):
    def record_heartbeat(
        self, worker: str, stage: str, host: str | None, pid: int | None, started_at: datetime | None
    ) -> None:
        """The worker is alive now (the database's clock). Its row updated by name, added the first time: not an
        upsert, whose ON CONFLICT needs SELECT on the whole table, which the workers' role need not have."""
        values = {"worker": worker, "stage": stage, "host": host, "pid": pid, "started_at": started_at}
        with self._cursor() as cur:
            cur.execute(
                "UPDATE worker_heartbeat SET stage = %(stage)s, host = %(host)s, pid = %(pid)s, "
                "started_at = %(started_at)s, last_seen = now() WHERE worker = %(worker)s",
                values,
            )
            if cur.rowcount == 0:
                cur.execute(
                    "INSERT INTO worker_heartbeat (worker, stage, host, pid, started_at, last_seen) "
                    "VALUES (%(worker)s, %(stage)s, %(host)s, %(pid)s, %(started_at)s, now()) "
                    "ON CONFLICT (worker) DO NOTHING",  # two publish workers adding beat's first row at once
                    values,
                )

    def worker_heartbeats(self) -> list[dict]:
        """Every worker's last heartbeat, with its age in seconds by the database's clock, by stage and name."""
        with self._cursor() as cur:
            cur.execute(
                "SELECT *, extract(epoch FROM now() - last_seen)::float8 AS age_s FROM worker_heartbeat "
                "ORDER BY stage, worker"
            )
            return cur.fetchall()
