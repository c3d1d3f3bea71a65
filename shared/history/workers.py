"""The workers' heartbeats: each worker's last sign of life, so the API knows which stages have a live worker
without a broker (shared/heartbeats.py writes them)."""

from __future__ import annotations

from datetime import datetime

from shared.history.connections import Store


class Workers(Store):
    def record_heartbeat(
        self, worker: str, stage: str, host: str | None, pid: int | None, started_at: datetime | None
    ) -> None:
        """The worker is alive now (the database's clock). An upsert on its name that reads no row: the workers'
        role may write heartbeats but not read them."""
        with self._cursor() as cur:
            cur.execute(
                "INSERT INTO worker_heartbeat (worker, stage, host, pid, started_at, last_seen) "
                "VALUES (%s, %s, %s, %s, %s, now()) ON CONFLICT (worker) DO UPDATE SET stage = EXCLUDED.stage, "
                "host = EXCLUDED.host, pid = EXCLUDED.pid, started_at = EXCLUDED.started_at, "
                "last_seen = EXCLUDED.last_seen",
                (worker, stage, host, pid, started_at),
            )

    def worker_heartbeats(self) -> list[dict]:
        """Every worker's last heartbeat, with its age in seconds by the database's clock, by stage and name."""
        with self._cursor() as cur:
            cur.execute(
                "SELECT *, extract(epoch FROM now() - last_seen)::float8 AS age_s FROM worker_heartbeat "
                "ORDER BY stage, worker"
            )
            return cur.fetchall()
