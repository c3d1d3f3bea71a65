"""Right to erasure: forget one buyer in the archive, in every zone of the lake, and in every later run."""

from __future__ import annotations

from dataclasses import dataclass

from services.archiver.archive import ArchiveStore
from shared.curated.erasure import Rewritten, forget_in_curated
from shared.curated.versions import announce
from shared.history import History
from shared.history.audit import Actor
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


def buyer_pseudonym(settings: Settings, buyer_id: str) -> str:
    return pseudonym(buyer_id, settings.pseudonym_key.get_secret_value().encode())


def erase_buyer(settings: Settings, history: History, lake: Lake, buyer_id: str) -> ErasureReport:
    """Record the erasure first, then delete the archive and rewrite the run zones and the curated versions:
    a failure half-way still keeps the buyer out of later runs, and the command can be run again."""
    history.add_erasure(buyer_pseudonym(settings, buyer_id))
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


def operator_erasure(settings: Settings, history: History, lake: Lake, redis, operator: Actor, buyer_id: str):
    """An operator's erasure: ``erase_buyer``, the API told of a rewritten served version, and one record in the
    audit trail, which names the pseudonym: keeping the id of a buyer who asked to be forgotten would defeat it."""
    with history.audited(operator, "erasure", buyer_pseudonym(settings, buyer_id)) as outcome:
        report = erase_buyer(settings, history, lake, buyer_id)
        if report.served is not None:
            announce(redis, report.served)
        outcome.detail = {"versions_rewritten": len(report.versions_rewritten)}
    return report
