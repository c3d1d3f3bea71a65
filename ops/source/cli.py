"""``reviews source create`` and ``reviews source load PATH...``."""

from __future__ import annotations

import argparse
import csv
import time
from datetime import UTC, datetime
from pathlib import Path

from ops.source.formats import UnknownFormat
from ops.source.loader import LoadReport, load_paths
from ops.source.schema import create_source
from shared.settings import get_settings
from shared.untrusted import csv_cell


def write_skipped_report(report: LoadReport, folder: Path) -> Path:
    """Every malformed and rejected line, for a spreadsheet: the file names and reasons quote what they read."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"skipped-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.csv"
    with open(path, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["file", "line", "problem", "reason"])
        for problem, skipped in report.skipped.items():
            writer.writerows((csv_cell(str(file)), line, problem, csv_cell(reason)) for file, line, reason in skipped)
    return path


def cmd_source(args: argparse.Namespace) -> int:
    settings = get_settings()
    if args.action == "create":
        create_source(settings)
        print(
            f"source database {settings.source_db} ready (owner {settings.source_owner_user}, "
            f"read-only {settings.source_reader_user})"
        )
        return 0
    started = time.monotonic()
    try:
        report = load_paths(settings, [Path(p) for p in args.paths], progress=not args.quiet)
    except (FileNotFoundError, UnknownFormat) as exc:
        print(f"error: {exc}")
        return 2
    elapsed = time.monotonic() - started
    print(report.summary())
    print(
        f"loaded {report.reviews_loaded} new reviews in {elapsed:.1f}s "
        f"({report.reviews_loaded / elapsed if elapsed else 0:.0f} reviews/s)"
    )
    if any(report.skipped.values()):
        path = write_skipped_report(report, settings.state_path / "reports")
        for problem, skipped in report.skipped.items():
            if skipped:
                print(f"{len(skipped)} {problem} lines skipped, each listed in {path}")
    return 0


def add_source_commands(sub: argparse._SubParsersAction) -> None:
    source = sub.add_parser("source", help="the source database: create it, load public review files into it")
    actions = source.add_subparsers(dest="action", required=True)
    actions.add_parser("create", help="create the database, its tables, the owner and the read-only role")
    load = actions.add_parser("load", help="load review and meta_* files (2014, 2018, 2023 formats)")
    load.add_argument("paths", nargs="+", help="files or folders (.json, .jsonl, optionally .gz)")
    load.add_argument("--quiet", action="store_true", help="no progress bar")
    source.set_defaults(func=cmd_source)
