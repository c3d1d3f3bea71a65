"""Transform: clean, validate, enrich and pseudonymise one raw batch.

Rows that fail validation are not dropped: they go to ``rejects/`` with the
first reason that failed them, as CSV whose cells cannot run as spreadsheet
formulas. The ids and categories read from the source are held to the loader's
limits (shared/untrusted.py) again: another system may write the source. No buyer
id leaves this stage: it becomes a keyed pseudonym (shared/pseudonym.py).
"""

from __future__ import annotations

import html
import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa

from shared.lake import Lake, cleaned_key, rejects_key
from shared.pseudonym import pseudonym
from shared.schemas import CLEANED, RAW
from shared.untrusted import BUYER_ID, CATEGORY, PRODUCT_ID, Limit, csv_cell, shown

EARLIEST_REVIEW = pd.Timestamp("1995-01-01", tz="UTC")  # Amazon's first customer reviews
_TAG = re.compile(r"<[^>]{0,2000}>")
_SPACE = re.compile(r"\s+")
# Unicode "other" categories: control, format, unassigned, private use, surrogates.
_INVISIBLE = {"Cc", "Cf", "Cn", "Co", "Cs"}
REJECT_COLUMNS = ["review_id", "product_id", "buyer_pseudonym", "rating", "title", "text", "reviewed_at", "reason"]


def clean_text(value: object) -> str:
    """Decode HTML entities (twice: the public files hold double-escaped ones), drop tags,
    normalise unicode (NFKC) and whitespace."""
    if not isinstance(value, str):
        return ""
    text = html.unescape(html.unescape(value))
    text = _TAG.sub(" ", text)
    text = unicodedata.normalize("NFKC", text)
    text = "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch) not in _INVISIBLE)
    return _SPACE.sub(" ", text).strip()


def _reasons(df: pd.DataFrame, now: pd.Timestamp) -> pd.Series:
    """The first failed rule per row, or None. Order matters: the earliest reason is reported."""

    def rule(name: str, failed: pd.Series) -> pd.Series:
        return pd.Series(np.where(failed.to_numpy(dtype=bool), name, None), index=df.index, dtype=object)

    def limit(column: str, field: Limit) -> pd.Series:
        return df[column].map(field.problem, na_action="ignore").astype(object)

    rules = [
        rule("duplicate review_id", df["review_id"].duplicated(keep="first")),
        rule("rating not in 1..5", ~df["rating"].isin([1, 2, 3, 4, 5])),
        rule("empty text", df["text"].str.len().fillna(0) == 0),
        rule("unknown product", ~df["product_known"].fillna(False).astype(bool) | (df["product_id"].fillna("") == "")),
        limit("product_id", PRODUCT_ID),
        rule("missing buyer", df["buyer_id"].fillna("") == ""),
        limit("buyer_id", BUYER_ID),
        limit("product_category", CATEGORY),
        rule(
            "timestamp outside 1995-01-01..now",
            df["reviewed_at"].isna() | (df["reviewed_at"] < EARLIEST_REVIEW) | (df["reviewed_at"] > now),
        ),
    ]
    reason = pd.Series([None] * len(df), index=df.index, dtype=object)
    for found in rules:
        reason = reason.where(reason.notna(), found)
    return reason


def rejects_csv(rejects: pd.DataFrame) -> bytes:
    """The rejects as CSV, every text cell neutralised so a spreadsheet shows it rather than runs it, and the
    product id (the one id a reject shows: the buyer's is a pseudonym) escaped when it holds a control character."""
    safe = rejects.assign(product_id=rejects["product_id"].map(shown, na_action="ignore"))
    safe = safe.map(lambda value: csv_cell(value) if isinstance(value, str) else value)
    return safe.to_csv(index=False).encode()


@dataclass(frozen=True)
class TransformResult:
    cleaned: pa.Table
    rejects: pd.DataFrame
    erased: int  # rows dropped on a right-to-erasure request: not rejects, never written anywhere


def transform(
    raw: pa.Table, pseudonym_key: bytes, now: datetime, erased: frozenset[str] = frozenset()
) -> TransformResult:
    df = raw.to_pandas(types_mapper=pd.ArrowDtype).astype(
        {"title": object, "text": object, "buyer_id": object, "product_id": object}
    )
    df["title"] = df["title"].map(clean_text)
    df["text"] = df["text"].map(clean_text)
    df["product_title"] = df["product_title"].map(lambda v: clean_text(v) or None, na_action="ignore")
    now_ts = pd.Timestamp(now).tz_convert(UTC)
    df["reviewed_at"] = pd.to_datetime(df["reviewed_at"].astype("datetime64[ms, UTC]"), utc=True)
    reason = _reasons(df, now_ts + timedelta(days=1))
    df["buyer_pseudonym"] = df["buyer_id"].map(lambda b: pseudonym(b, pseudonym_key) if b else "")
    forgotten = df["buyer_pseudonym"].isin(erased)
    df, reason = df.loc[~forgotten], reason.loc[~forgotten]

    rejects = df.loc[reason.notna()].assign(reason=reason[reason.notna()])[REJECT_COLUMNS]
    good = df.loc[reason.isna()].copy()
    good["helpful_votes"] = good["helpful_votes"].fillna(0)
    good["text_length"] = good["text"].str.len()
    good["word_count"] = good["text"].str.split().str.len()
    good["age_days"] = ((now_ts - good["reviewed_at"]).dt.total_seconds() / 86400).astype(np.float32)
    cleaned = pa.Table.from_pandas(good[CLEANED.names], schema=CLEANED, preserve_index=False)
    return TransformResult(cleaned, rejects.reset_index(drop=True), int(forgotten.sum()))


def run(
    lake: Lake,
    run_id: str,
    batch: int,
    raw_key: str,
    pseudonym_key: bytes,
    now: datetime,
    erased: frozenset[str] = frozenset(),
) -> tuple[str, int, int, int]:
    """Transform one stored raw batch; returns (cleaned key, rows in, rows out, rejects)."""
    raw = lake.get_table(raw_key, RAW)
    result = transform(raw, pseudonym_key, now, erased)
    if len(result.rejects):
        lake.put_bytes(rejects_key(run_id, batch), rejects_csv(result.rejects), "text/csv")
    key = cleaned_key(run_id, batch)
    lake.put_table(key, result.cleaned)
    return key, raw.num_rows, result.cleaned.num_rows, len(result.rejects)
