"""How a run reads the source: only what changed since the served version (incremental), or
everything (full: asked for, the first run, or when the served version cannot be built upon).

The base of an incremental run is the version the "latest" pointer names, with the watermark of
the run that published it: after a rollback, the next run starts from the older version and reads
again what changed since, so the new version never mixes the rolled-back one in.
"""

from __future__ import annotations

from shared.history import History
from shared.lake import Lake
from shared.plan import Plan, watermark_of


def plan_run(params: dict, lake: Lake, history: History, classifier_fingerprint: str | None) -> Plan:
    """``classifier_fingerprint``: what the classifier workers announced (None: not known yet)."""
    if params.get("full"):
        return Plan("full", "a full run was asked for")
    latest = lake.latest()
    if latest is None:
        return Plan("full", "no curated version yet")
    base = history.get_run(latest.version)
    since = watermark_of(base) if base else None
    if since is None or not base["model_fingerprint"]:
        return Plan("full", f"the served version {latest.version} has no watermark")
    if classifier_fingerprint is not None and classifier_fingerprint != base["model_fingerprint"]:
        return Plan("full", f"the classifier changed since version {latest.version}: every review is scored again")
    if not lake.exists(latest.key):
        return Plan("full", f"the served version's file {latest.key} is gone")
    return Plan("incremental", f"what changed since version {latest.version}", latest.version, since)
