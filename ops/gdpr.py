"""Right to erasure: forget one buyer in the archive, in every zone of the lake, and in every later run."""

from __future__ import annotations

from dataclasses import dataclass

from services.archiver.archive import ArchiveStore
from shared.curated.erasure import Rewritten, forget_in_curated
from shared.history import History
from shared.lake import CuratedVersion, Lake
from shared.pseudonym import pseudonym
from shared.run_zone_erasure import ZoneErasure, forget_in_run_zones
from shared.settings import Settings


@dataclass(frozen=True)
class ErasureReport:
    archived_documents_deleted: int
    run_zones: list[ZoneErasure]
    versions_rewritten: list[Rewritten]
    served: CuratedVersion | None  # the served version's new pointer, when it held any of their reviews


def erase_buyer(settings: Settings, history: History, lake: Lake, buyer_id: str) -> ErasureReport:
    """Record the erasure first, then delete the archive and rewrite the run zones and the curated versions:
    a failure half-way still keeps the buyer out of later runs, and the command can be run again."""
    pseudo = pseudonym(buyer_id, settings.pseudonym_key.get_secret_value().encode())
    history.add_erasure(pseudo)
    archive = ArchiveStore(settings)
    try:
        deleted = archive.delete_buyer(buyer_id)
    finally:
        archive.close()
    # Every erased buyer, not this one only: a run publishing while an earlier request was made is caught too.
    erased = history.erased_pseudonyms()
    zones = forget_in_run_zones(lake, buyer_id, erased)
    rewritten, served = forget_in_curated(lake, erased, settings.api_reviews_per_product)
    return ErasureReport(deleted, zones, rewritten, served)
