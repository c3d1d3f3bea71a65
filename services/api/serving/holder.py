"""Keeps the served index on the newest curated version, swapped in whole.

Two signals make it look: a message on the Redis channel the publisher announces
on (seconds), and a periodic read of the "latest" pointer (the fallback when a
message is missed). A new version's serving files come through the host's cache
folder (fetched once per host, checked) and are mapped off the event loop; only a
complete index replaces the old one, in one assignment, so a request sees one
version or the other, never a mix. A broken new version keeps the old one serving.
"""

from __future__ import annotations

import asyncio
import time

import anyio
import structlog

from services.api.serving.cache import ServingCache
from services.api.serving.index import CorruptServingFile, ServingIndex
from shared.lake import LATEST_KEY, CuratedVersion

log = structlog.get_logger()


class IndexHolder:
    def __init__(self, s3, bucket: str, cache: ServingCache):
        self._s3 = s3  # an aioboto3 client, owned by the app's lifespan
        self._bucket = bucket
        self.cache = cache
        self._lock = asyncio.Lock()
        self.index: ServingIndex | None = None
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
                self.last_error = f"reading {LATEST_KEY}: {type(exc).__name__}"  # readiness shows it; the log, all
                log.warning("curated_pointer_unreadable", error=repr(exc))
                return False
            if self.index is not None and self.index.version == pointer:
                return False
            try:
                index = await self._load(pointer)
            except Exception as exc:
                self.last_error = f"version {pointer.version} not loaded: {type(exc).__name__}"
                log.error("curated_load_failed", version=pointer.version, error=repr(exc))
                return False
            self.index = index  # the swap: one reference assignment
            self.last_error = None
            self.loads += 1
            log.info("curated_loaded", version=pointer.version, rows=index.rows, products=index.product_count)
            return True

    async def _load(self, pointer: CuratedVersion) -> ServingIndex:
        started = time.monotonic()
        async with self.cache.locked():  # the host's other workers wait, then map the same files
            locked = time.monotonic()
            folder = await self.cache.fetch(self._s3, self._bucket, pointer)
            fetched = time.monotonic()
            try:
                index = await anyio.to_thread.run_sync(ServingIndex, pointer, folder)
            except CorruptServingFile:
                self.cache.forget(pointer)
                raise
            self.cache.loaded(pointer)
        log.info(
            "serving_files_mapped",
            version=pointer.version,
            wait_s=round(locked - started, 3),
            fetch_s=round(fetched - locked, 3),
            open_s=round(time.monotonic() - fetched, 3),
        )
        return index

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
