"""Right to erasure: forget one buyer in the archive and in every later curated file."""

from __future__ import annotations

from dataclasses import dataclass

import pymongo

from services.transformer.transform import pseudonym
from shared.history import History
from shared.settings import Settings


@dataclass(frozen=True)
class ErasureReport:
    buyer_pseudonym: str
    archived_documents_deleted: int


def erase_buyer(settings: Settings, history: History, buyer_id: str) -> ErasureReport:
    """Record the erasure first, then delete the archive: a failure half-way still keeps
    the buyer out of later runs, and the command can be run again."""
    pseudo = pseudonym(buyer_id, settings.pseudonym_key.get_secret_value().encode())
    history.add_erasure(pseudo)
    with pymongo.MongoClient(settings.mongo_url, serverSelectionTimeoutMS=10_000) as client:
        deleted = client[settings.mongo_db][settings.mongo_collection].delete_many({"buyer_id": buyer_id})
    return ErasureReport(pseudo, deleted.deleted_count)
