"""Celery beat's scheduler, plus a heartbeat in Redis so that ``stack status`` can ping beat."""

from __future__ import annotations

import time

import redis
from celery.beat import PersistentScheduler

from shared.celery_app import BEAT_HEARTBEAT_KEY

HEARTBEAT_EVERY_S = 5.0


class HeartbeatScheduler(PersistentScheduler):
    def setup_schedule(self) -> None:
        super().setup_schedule()
        self._redis = redis.Redis.from_url(self.app.conf.broker_url)

    def tick(self, *args, **kwargs) -> float:
        next_in = super().tick(*args, **kwargs)
        self._redis.set(BEAT_HEARTBEAT_KEY, time.time(), ex=600)
        return min(next_in, HEARTBEAT_EVERY_S)

    def close(self) -> None:
        super().close()
        self._redis.close()
