"""Bulk loading of public Amazon review files into the source database.

Each chunk of parsed lines is COPYed into a temporary staging table, then
inserted with ``ON CONFLICT DO NOTHING`` on the review's content hash, in one
transaction: exact duplicates load once and loading a file twice adds nothing.
Malformed lines (not a record of the file's format) and rejected ones (a record
that breaks a limit of shared/untrusted.py: a control character or NUL in an id or
a category, an id or a category too long) are counted and reported with their
file, line number and reason; the rest of the file loads.
"""

from __future__ import annotations

import gzip
import io
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2
import structlog
from tqdm import tqdm

from ops.source.formats import Malformed, Rejected, UnknownFormat, detect, parse_line, to_product, to_review
from shared.settings import Settings

log = structlog.get_logger()

CHUNK_ROWS = 20_000
SUFFIXES = (".json", ".jsonl", ".json.gz", ".jsonl.gz")

STAGING = """
CREATE TEMP TABLE IF NOT EXISTS stage_review (
    review_key text, product_id text, buyer_id text, buyer_name text, rating smallint, title text, text text,
    helpful_votes integer, total_votes integer, verified_purchase boolean, reviewed_at timestamptz,
    source_format text, source_file text, source_line integer
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS stage_product (
    product_id text, title text, brand text, category text, categories jsonb, price numeric(12, 2),
    source_format text, source_line integer
) ON COMMIT DELETE ROWS;
"""

INSERT_REVIEWS = """
INSERT INTO buyer (buyer_id, name)
SELECT DISTINCT ON (buyer_id) buyer_id, buyer_name FROM stage_review ORDER BY buyer_id, buyer_name NULLS LAST
ON CONFLICT (buyer_id) DO NOTHING;
INSERT INTO product (product_id, has_metadata, source_format)
SELECT DISTINCT product_id, false, source_format FROM stage_review
ON CONFLICT (product_id) DO NOTHING;
INSERT INTO review (review_key, product_id, buyer_id, rating, title, text, helpful_votes, total_votes,
                    verified_purchase, reviewed_at, source_format, source_file, source_line)
SELECT review_key, product_id, buyer_id, rating, title, text, helpful_votes, total_votes,
       verified_purchase, reviewed_at, source_format, source_file, source_line
FROM (SELECT DISTINCT ON (review_key) * FROM stage_review ORDER BY review_key, source_line) first_copy
ORDER BY source_line  -- review ids follow the order of the file
ON CONFLICT (review_key) DO NOTHING;
"""

UPSERT_PRODUCTS = """
INSERT INTO product (product_id, title, brand, category, categories, price, has_metadata, source_format)
SELECT product_id, title, brand, category, categories, price, true, source_format
FROM (SELECT DISTINCT ON (product_id) * FROM stage_product ORDER BY product_id, source_line DESC) last_copy
ON CONFLICT (product_id) DO UPDATE SET
    title = EXCLUDED.title, brand = EXCLUDED.brand, category = EXCLUDED.category,
    categories = EXCLUDED.categories, price = EXCLUDED.price, has_metadata = true,
    source_format = EXCLUDED.source_format, updated_at = now();
"""


@dataclass
class FileReport:
    path: Path
    kind: str = "?"
    generation: str = "?"
    lines: int = 0
    loaded: int = 0  # reviews inserted, or products upserted
    duplicates: int = 0  # reviews already in the source (in this file or an earlier load)
    malformed: list[tuple[int, str]] = field(default_factory=list)
    rejected: list[tuple[int, str]] = field(default_factory=list)


@dataclass
class LoadReport:
    files: list[FileReport] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def reviews_loaded(self) -> int:
        return sum(f.loaded for f in self.files if f.kind == "review")

    @property
    def malformed(self) -> list[tuple[Path, int, str]]:
        return [(f.path, line, reason) for f in self.files for line, reason in f.malformed]

    @property
    def rejected(self) -> list[tuple[Path, int, str]]:
        return [(f.path, line, reason) for f in self.files for line, reason in f.rejected]

    @property
    def skipped(self) -> dict[str, list[tuple[Path, int, str]]]:
        """The lines not loaded, by problem."""
        return {"malformed": self.malformed, "rejected": self.rejected}

    def summary(self, show_skipped: int = 20) -> str:
        lines = [
            f"  {'file':<48}{'kind':>7}{'format':>7}{'lines':>9}{'loaded':>9}{'dupl.':>8}{'malformed':>10}"
            f"{'rejected':>9}"
        ]
        for f in self.files:
            lines.append(
                f"  {f.path.name[:47]:<48}{f.kind:>7}{f.generation:>7}{f.lines:>9}{f.loaded:>9}"
                f"{f.duplicates:>8}{len(f.malformed):>10}{len(f.rejected):>9}"
            )
        for problem, skipped in self.skipped.items():
            for path, line, reason in skipped[:show_skipped]:
                lines.append(f"  {problem} {path}:{line}: {reason}")
            if len(skipped) > show_skipped:
                lines.append(f"  ... and {len(skipped) - show_skipped} more {problem} lines")
        reviews = sum(f.lines for f in self.files if f.kind == "review")
        lines.append(
            f"  {reviews:,} review lines read, {self.reviews_loaded:,} new reviews loaded in "
            f"{self.seconds:.1f}s ({reviews / max(self.seconds, 1e-9):,.0f} review lines/s)"
        )
        return "\n".join(lines)


def discover(paths: list[Path]) -> list[Path]:
    """The review and product files named by ``paths`` (folders are searched recursively)."""
    files: list[Path] = []
    for path in paths:
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist")
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.name.endswith(SUFFIXES)))
        else:
            files.append(path)
    if not files:
        raise FileNotFoundError(f"no review files ({', '.join(SUFFIXES)}) under {', '.join(map(str, paths))}")
    return files


def read_lines(path: Path, progress: bool) -> Iterator[tuple[int, str]]:
    """(line number, text) of a plain or gzip file, with a progress bar over the bytes on disk."""
    with (
        open(path, "rb") as raw,
        tqdm(
            total=path.stat().st_size, unit="B", unit_scale=True, desc=path.name[:40], disable=not progress, leave=False
        ) as bar,
    ):
        stream = gzip.GzipFile(fileobj=raw) if path.name.endswith(".gz") else raw
        text = io.TextIOWrapper(stream, encoding="utf-8", errors="replace")
        for number, line in enumerate(text, start=1):
            yield number, line
            if number % 2000 == 0:
                bar.update(raw.tell() - bar.n)
        bar.update(bar.total - bar.n)


def _sniff(path: Path) -> tuple[str, str]:
    for _, line in read_lines(path, progress=False):
        if line.strip():
            try:
                return detect(parse_line(line), path.name)
            except Malformed:
                continue
    raise UnknownFormat(f"{path}: no readable record")


def _copy_value(value: object) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    text = value.isoformat() if hasattr(value, "isoformat") else str(value)
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _copy(cur, table: str, rows: list[tuple]) -> None:
    buffer = io.StringIO()
    for row in rows:
        buffer.write("\t".join(_copy_value(v) for v in row) + "\n")
    buffer.seek(0)
    cur.copy_expert(f"COPY {table} FROM STDIN", buffer)


def _load_file(conn, report: FileReport, progress: bool) -> None:
    chunk: list[tuple] = []
    source_file = str(report.path)

    def flush() -> None:
        with conn, conn.cursor() as cur:
            if report.kind == "review":
                _copy(cur, "stage_review", chunk)
                cur.execute(INSERT_REVIEWS)
                inserted = cur.rowcount  # of the last statement: the review insert
                report.loaded += inserted
                report.duplicates += len(chunk) - inserted
            else:
                _copy(cur, "stage_product", chunk)
                cur.execute(UPSERT_PRODUCTS)
                report.loaded += cur.rowcount
        chunk.clear()

    for number, line in read_lines(report.path, progress):
        report.lines = number
        if not line.strip():
            continue
        try:
            record = parse_line(line)
            if report.kind == "review":
                r = to_review(record, report.generation)
                chunk.append(
                    (
                        r.review_key,
                        r.product_id,
                        r.buyer_id,
                        r.buyer_name,
                        r.rating,
                        r.title,
                        r.text,
                        r.helpful_votes,
                        r.total_votes,
                        r.verified_purchase,
                        r.reviewed_at,
                        report.generation,
                        source_file,
                        number,
                    )
                )
            else:
                p = to_product(record, report.generation)
                chunk.append(
                    (p.product_id, p.title, p.brand, p.category, p.categories, p.price, report.generation, number)
                )
        except Malformed as exc:
            report.malformed.append((number, str(exc)))
            continue
        except Rejected as exc:
            report.rejected.append((number, str(exc)))
            continue
        if len(chunk) >= CHUNK_ROWS:
            flush()
    if chunk:
        flush()


def load_paths(settings: Settings, paths: list[Path], progress: bool = True) -> LoadReport:
    """Load every review and product file under ``paths``; metadata first, whatever the order given."""
    reports = []
    for path in discover([Path(p) for p in paths]):
        kind, generation = _sniff(path)
        reports.append(FileReport(path, kind, generation))
    reports.sort(key=lambda r: r.kind != "meta")  # stable: reviews keep the order given
    started = time.monotonic()
    conn = psycopg2.connect(settings.source_owner_dsn, application_name="reviews-loader")
    try:
        with conn, conn.cursor() as cur:
            cur.execute(STAGING)
        for report in reports:
            _load_file(conn, report, progress)
            log.info(
                "source_file_loaded",
                file=str(report.path),
                kind=report.kind,
                generation=report.generation,
                lines=report.lines,
                loaded=report.loaded,
                duplicates=report.duplicates,
                malformed=len(report.malformed),
                rejected=len(report.rejected),
            )
    finally:
        conn.close()
    return LoadReport(reports, time.monotonic() - started)
