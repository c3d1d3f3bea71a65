"""``reviews lake``, ``reviews curated list|rollback`` and ``reviews gdpr erase``."""

from __future__ import annotations

import argparse

from ops.gdpr import erase_buyer
from shared import clients
from shared.curated.versions import UnknownVersion, announce, list_versions, rollback
from shared.lake import ZONES, curated_key
from shared.settings import get_settings


def cmd_lake(args: argparse.Namespace) -> int:
    c = clients.init(get_settings())
    scope = f"run={args.run}" if args.run else "every run"
    print(f"bucket {c.lake.bucket}, {scope}")
    for zone in ZONES:
        if zone == "curated":
            prefix = curated_key(args.run) if args.run else "curated/"
        else:
            prefix = f"{zone}/run={args.run}/" if args.run else f"{zone}/"
        objects, size = c.lake.usage(prefix)
        print(f"  {zone:<8} {objects:>7,} objects {size:>14,} bytes   s3://{c.lake.bucket}/{prefix}")
    latest = c.lake.latest()
    print(
        f"latest: {latest.version} ({latest.rows:,} reviews, published {latest.published_at})"
        if latest
        else "latest: none published yet"
    )
    return 0


def cmd_curated(args: argparse.Namespace) -> int:
    settings = get_settings()
    c = clients.init(settings)
    if args.action == "list":
        for v in list_versions(c.lake):
            print(f"{'*' if v.latest else ' '} {v.version}  {v.size_bytes:>12,} bytes  {v.key}")
        print("(* = latest, served by the API)")
        return 0
    try:
        version = rollback(c.lake, args.to, settings.api_reviews_per_product)
    except UnknownVersion as exc:
        print(f"error: {exc}")
        return 2
    announce(c.redis, version)
    print(f"latest is now {version.version} ({version.rows} reviews); the API reloads it within seconds")
    return 0


def cmd_gdpr(args: argparse.Namespace) -> int:
    settings = get_settings()
    c = clients.init(settings)
    report = erase_buyer(settings, c.history, c.lake, args.buyer)
    if report.served is not None:
        announce(c.redis, report.served)
    print(
        f"buyer erased: {report.archived_documents_deleted} archived review document(s) deleted from MongoDB; "
        "left out of every later run"
    )
    for zone in report.run_zones:
        print(
            f"{zone.zone}/: {zone.rows_removed} review(s) removed from {zone.objects_rewritten} of "
            f"{zone.objects_read} object(s)"
        )
    served = report.served.version if report.served else None
    for r in report.versions_rewritten:
        reload = " (served: the API reloads it within seconds)" if r.version == served else ""
        print(f"curated version {r.version}: {r.removed} review(s) removed, {r.rows} kept{reload}")
    if not report.versions_rewritten:
        print("no kept curated version holds their reviews")
    print("note: the source database belongs to the shop and is not changed by the pipeline")
    return 0


def add_lake_commands(sub: argparse._SubParsersAction) -> None:
    lake = sub.add_parser("lake", help="what the data lake holds, zone by zone")
    lake.add_argument("--run", help="only this run's objects")
    lake.set_defaults(func=cmd_lake)

    curated = sub.add_parser("curated", help="curated versions: list them, or roll back the one the API serves")
    curated.add_argument("action", choices=["list", "rollback"])
    curated.add_argument("--to", help="the version (run id) to serve; default: the one before the latest")
    curated.set_defaults(func=cmd_curated)

    gdpr = sub.add_parser("gdpr", help="right to erasure")
    gdpr.add_argument("action", choices=["erase"])
    gdpr.add_argument("--buyer", required=True, help="the buyer id to forget")
    gdpr.set_defaults(func=cmd_gdpr)
