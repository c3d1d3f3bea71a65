"""Keeps the served index on the newest curated version, swapped in whole.

Two signals make it look: a message on the Redis channel the publisher announces
on (seconds), and a periodic read of the "latest" pointer (the fallback when a
message is missed). A new version loads in a worker thread; only a complete
index replaces the old one, in one assignment, so a request sees one version or
the other, never a mix. A broken new file keeps the old index serving.
"""

from __future__ import annotations

import asyncio
import io
import time

import anyio
import pyarrow.parquet as pq
import structlog

from services.api.index import ReviewIndex
from shared.lake import LATEST_KEY, CuratedVersion
from shared.schemas import CURATED

log = structlog.get_logger()


class IndexHolder:
    def __init__(self, s3, bucket: str, reviews_kept: int):
        self._s3 = s3  # an aioboto3 client, owned by the app's lifespan
        self._bucket = bucket
        self._reviews_kept = reviews_kept
        self._lock = asyncio.Lock()
        self.index: ReviewIndex | None = None
        self.last_error: str | None = None
        self.last_check: float | None = None
        self.loads = 0

    async def _get(self, key: str) -> bytes:
        response = await self._s3.get_object(Bucket=self._bucket, Key=key)
        async with response["Body"] as body:
            return await body.read()

    async def refresh(self) -> bool:
        """Load the version "latest" names if it is not the one served; True when it swapped."""
        async with self._lock:  # one load at a time; a burst of announcements loads once
            self.last_check = time.time()
            try:
                pointer = CuratedVersion.from_json(await self._get(LATEST_KEY))
            except self._s3.exceptions.NoSuchKey:
                return False
            except Exception as exc:
                self.last_error = f"reading {LATEST_KEY}: {exc!r}"
                log.warning("curated_pointer_unreadable", error=repr(exc))
                return False
            if self.index is not None and self.index.version == pointer:
                return False
            try:
                data = await self._get(pointer.key)
                index = await anyio.to_thread.run_sync(self._build, data, pointer)
            except Exception as exc:
                self.last_error = f"version {pointer.version} not loaded: {exc!r}"
                log.error("curated_load_failed", version=pointer.version, error=repr(exc))
                return False
            self.index = index  # the swap: one reference assignment
            self.last_error = None
            self.loads += 1
            log.info("curated_loaded", version=pointer.version, rows=index.rows, products=len(index.products))
            return True

    def _build(self, data: bytes, pointer: CuratedVersion) -> ReviewIndex:
        table = pq.read_table(io.BytesIO(data))
        missing = set(CURATED.names) - set(table.schema.names)
        if missing:
            raise ValueError(f"curated file lacks columns {sorted(missing)}")
        return ReviewIndex.build(table, pointer, self._reviews_kept)

    async def follow(self, redis, channel: str, check_every_s: float) -> None:
        """Run until cancelled: reload on each announcement, and every ``check_every_s`` anyway."""
        pubsub = redis.pubsub()
        subscribed = False
        try:
            while True:
                try:
                    if not subscribed:
                        await pubsub.subscribe(channel)
                        subscribed = True
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=check_every_s)
                except Exception as exc:  # Redis down: keep polling the pointer, resubscribe later
                    log.warning("announcements_unavailable", error=repr(exc))
                    subscribed = False
                    message = None
                    await asyncio.sleep(check_every_s)
                if message is not None or self.last_check is None or time.time() - self.last_check >= check_every_s:
                    await self.refresh()
        finally:
            await pubsub.aclose()
