"""``reviews lake [expire]``, ``reviews curated list|rollback`` and ``reviews gdpr erase``."""

from __future__ import annotations

import argparse

from ops.gdpr import erase_buyer
from shared import clients, retention
from shared.curated.versions import UnknownVersion, announce, list_versions, rollback
from shared.lake import ZONES, curated_key, run_prefix
from shared.settings import get_settings


def cmd_lake(args: argparse.Namespace) -> int:
    if args.action == "expire":
        return cmd_expire(args)
    c = clients.init_operator(get_settings())
    scope = f"run={args.run}" if args.run else "every run"
    print(f"bucket {c.lake.bucket}, {scope}")
    for zone in ZONES:
        if zone == "curated":
            prefix = curated_key(args.run) if args.run else "curated/"
        else:
            prefix = run_prefix(zone, args.run) if args.run else f"{zone}/"
        objects, size = c.lake.usage(prefix)
        print(f"  {zone:<8} {objects:>7,} objects {size:>14,} bytes   s3://{c.lake.bucket}/{prefix}")
    latest = c.lake.latest()
    print(
        f"latest: {latest.version} ({latest.rows:,} reviews, published {latest.published_at})"
        if latest
        else "latest: none published yet"
    )
    return 0


def cmd_expire(args: argparse.Namespace) -> int:
    settings = get_settings()
    c = clients.init_operator(settings)
    days = settings.lake_retention_days
    if args.dry_run:
        expiry = retention.expire(c.lake, c.history, days, dry_run=True)
    else:
        expiry = retention.expire_and_measure(c.lake, c.history, c.redis, days)
    verb = "would remove" if args.dry_run else "removed"
    print(
        f"bucket {c.lake.bucket}: runs started before {expiry.cutoff:%Y-%m-%d %H:%M} UTC (LAKE_RETENTION_DAYS={days})"
    )
    for zone, e in expiry.zones.items():
        print(f"  {zone:<8} {verb} {e.objects:>7,} objects {e.bytes:>14,} bytes of {len(e.runs):,} run(s)")
    for run_id in expiry.kept_active:
        print(f"  kept run {run_id}: still queued or running")
    print("curated/ is kept: its versions are pruned by CURATED_VERSIONS_KEPT")
    return 0


def cmd_curated(args: argparse.Namespace) -> int:
    settings = get_settings()
    c = clients.init_operator(settings)
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
    c = clients.init_operator(settings)
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
    lake = sub.add_parser("lake", help="what the data lake holds, zone by zone; expire: apply the retention")
    lake.add_argument(
        "action", nargs="?", choices=["expire"], help="delete the run zones' objects past LAKE_RETENTION_DAYS"
    )
    lake.add_argument("--run", help="only this run's objects")
    lake.add_argument("--dry-run", action="store_true", help="with expire: show what it would remove, remove nothing")
    lake.set_defaults(func=cmd_lake)

    curated = sub.add_parser("curated", help="curated versions: list them, or roll back the one the API serves")
    curated.add_argument("action", choices=["list", "rollback"])
    curated.add_argument("--to", help="the version (run id) to serve; default: the one before the latest")
    curated.set_defaults(func=cmd_curated)

    gdpr = sub.add_parser("gdpr", help="right to erasure")
    gdpr.add_argument("action", choices=["erase"])
    gdpr.add_argument("--buyer", required=True, help="the buyer id to forget")
    gdpr.set_defaults(func=cmd_gdpr)
