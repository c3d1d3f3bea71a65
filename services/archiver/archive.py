"""Archive: the raw JSON copy of every extracted review, in MongoDB, keyed by review id.

Upserts on ``_id = review_id`` make a re-run or a redelivered batch rewrite the
same documents instead of adding copies. The buyer id stays here (the archive is
the audit copy) and is indexed, so a right-to-erasure request deletes by it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
from motor.motor_asyncio import AsyncIOMotorClient
from pymongo import ASCENDING, UpdateOne

from shared.settings import Settings


def to_documents(table: pa.Table, run_id: str, now: datetime) -> list[dict]:
    docs = []
    for row in table.to_pylist():
        doc = {k: v for k, v in row.items() if k != "review_id"}
        doc.update(_id=row["review_id"], run_id=run_id, archived_at=now)
        docs.append(doc)
    return docs


class ArchiveStore:
    """A motor client on an event loop of its own, for synchronous Celery tasks to call.

    Made once per worker process. motor binds a client to one event loop, so the
    loop lives as long as the client, in a daemon thread.
    """

    def __init__(self, settings: Settings):
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="archive-loop", daemon=True)
        self._thread.start()
        self._settings = settings
        self._client: AsyncIOMotorClient = self._call(self._connect())
        self._collection = self._client[settings.mongo_db][settings.mongo_collection]
        self._indexed = False

    async def _connect(self) -> AsyncIOMotorClient:
        # Fail fast when MongoDB is down: the task retries with backoff instead of hanging.
        return AsyncIOMotorClient(self._settings.mongo_url, serverSelectionTimeoutMS=5000, connectTimeoutMS=5000)

    def _call(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    async def _upsert(self, docs: list[dict]) -> int:
        if not self._indexed:
            await self._collection.create_index([("buyer_id", ASCENDING)], name="buyer_id")
            self._indexed = True
        if not docs:
            return 0
        ops = [UpdateOne({"_id": d["_id"]}, {"$set": d}, upsert=True) for d in docs]
        result = await self._collection.bulk_write(ops, ordered=False)
        return result.upserted_count + result.matched_count

    def upsert(self, docs: list[dict]) -> int:
        """Upsert ``docs`` by ``_id``; returns how many documents the batch now covers."""
        return self._call(self._upsert(docs))

    async def _delete_buyer(self, buyer_id: str) -> int:
        return (await self._collection.delete_many({"buyer_id": buyer_id})).deleted_count

    def delete_buyer(self, buyer_id: str) -> int:
        """Delete every archived review of ``buyer_id`` (right to erasure); returns how many there were."""
        return self._call(self._delete_buyer(buyer_id))

    async def _count(self) -> int:
        return await self._collection.estimated_document_count()

    def count(self) -> int:
        """Documents in the archive, from the collection's metadata (no scan)."""
        return self._call(self._count())

    def close(self) -> None:
        self._client.close()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)


def run(store: ArchiveStore, table: pa.Table, run_id: str, now: datetime | None = None) -> int:
    return store.upsert(to_documents(table, run_id, now or datetime.now(UTC)))
