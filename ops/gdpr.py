"""Right to erasure: forget one buyer in the archive, in every kept curated version and in every later one."""

from __future__ import annotations

from dataclasses import dataclass

import pymongo

from services.transformer.transform import pseudonym
from shared.curated.erasure import Rewritten, forget_in_curated
from shared.history import History
from shared.lake import CuratedVersion, Lake
from shared.settings import Settings


@dataclass(frozen=True)
class ErasureReport:
    buyer_pseudonym: str
    archived_documents_deleted: int
    versions_rewritten: list[Rewritten]
    served: CuratedVersion | None  # the served version's new pointer, when it held any of their reviews


def erase_buyer(settings: Settings, history: History, lake: Lake, buyer_id: str) -> ErasureReport:
    """Record the erasure first, then delete the archive and rewrite the curated versions: a failure
    half-way still keeps the buyer out of later runs, and the command can be run again."""
    pseudo = pseudonym(buyer_id, settings.pseudonym_key.get_secret_value().encode())
    history.add_erasure(pseudo)
    with pymongo.MongoClient(settings.mongo_url, serverSelectionTimeoutMS=10_000) as client:
        deleted = client[settings.mongo_db][settings.mongo_collection].delete_many({"buyer_id": buyer_id})
    # Every erased buyer, not this one only: a run publishing while an earlier request was made is caught too.
    rewritten, served = forget_in_curated(lake, history.erased_pseudonyms(), settings.api_reviews_per_product)
    return ErasureReport(pseudo, deleted.deleted_count, rewritten, served)
