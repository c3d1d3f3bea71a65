"""Model outputs cached in Redis by content hash, so a daily re-run skips unchanged reviews.

The hash covers the text and the classifier's fingerprint (model, labels,
truncation, quantisation): change any of them and every entry misses.
"""

from __future__ import annotations

import numpy as np
import redis

PREFIX = "reviews:scores:"


class RedisScoreCache:
    def __init__(self, client: redis.Redis, ttl_s: int):
        self._redis = client
        self._ttl_s = ttl_s

    def get_many(self, keys: list[str]) -> dict[str, np.ndarray]:
        if not keys:
            return {}
        values = self._redis.mget([PREFIX + k for k in keys])
        return {k: np.frombuffer(v, dtype=np.float32) for k, v in zip(keys, values, strict=True) if v is not None}

    def put_many(self, entries: dict[str, np.ndarray]) -> None:
        pipe = self._redis.pipeline(transaction=False)
        for key, vector in entries.items():
            pipe.set(PREFIX + key, np.asarray(vector, dtype=np.float32).tobytes(), ex=self._ttl_s)
        pipe.execute()
