"""The public Amazon review formats of the UCSD McAuley lab, mapped onto one source schema.

Three generations, each with review files and ``meta_*`` product files:
2014 (SIGIR'15; metadata lines are Python literals, not JSON), 2018 (EMNLP'19;
``vote`` is a string with thousands separators) and 2023 (Amazon Reviews'23;
millisecond timestamps, products keyed by ``parent_asin``).
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from shared.untrusted import BUYER_ID, CATEGORY, PRODUCT_ID, Limit, free_text

_AMOUNT = re.compile(r"\d[\d,]*(?:\.\d+)?")


class Malformed(ValueError):
    """A line that cannot be read as a record of its file's format."""


class Rejected(ValueError):
    """A record that reads, but breaks a limit of shared/untrusted.py (an id too long, a NUL in a category)."""


class UnknownFormat(ValueError):
    pass


@dataclass(frozen=True)
class Review:
    review_key: str
    product_id: str
    buyer_id: str
    buyer_name: str | None
    rating: int | None
    title: str | None
    text: str | None
    helpful_votes: int
    total_votes: int | None
    verified_purchase: bool | None
    reviewed_at: datetime | None


@dataclass(frozen=True)
class Product:
    product_id: str
    title: str | None
    brand: str | None
    category: str | None
    categories: str | None  # JSON
    price: Decimal | None


def parse_line(line: str) -> dict:
    """One record: JSON, or the Python literal the 2014 metadata files hold (never ``eval``)."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        try:
            record = ast.literal_eval(line)
        except (ValueError, SyntaxError, MemoryError, RecursionError) as exc:
            raise Malformed(f"neither JSON nor a Python literal ({type(exc).__name__})") from None
    if not isinstance(record, dict):
        raise Malformed(f"a record must be an object, found {type(record).__name__}")
    return record


def detect(record: dict, file_name: str) -> tuple[str, str]:
    """(kind, generation) of a file, from its name and one of its records."""
    if "user_id" in record and "rating" in record:
        return "review", "2023"
    if "reviewerID" in record:
        return "review", "2014" if "helpful" in record else "2018"
    if file_name.startswith("meta_") or "asin" in record or "parent_asin" in record:
        if "parent_asin" in record or "main_category" in record:
            return "meta", "2023"
        if {"categories", "salesRank", "imUrl", "related"} & record.keys():
            return "meta", "2014"
        return "meta", "2018"
    raise UnknownFormat(f"{file_name}: not a known Amazon review format (keys seen: {sorted(record)[:12]})")


def _text(value: object) -> str | None:
    return None if value is None else free_text(str(value))


def _checked(limit: Limit, value: str) -> str:
    problem = limit.problem(value)
    if problem:
        raise Rejected(problem)
    return value


def _id(record: dict, limit: Limit, *names: str) -> str:
    for name in names:
        value = record.get(name)
        if isinstance(value, str | int) and str(value).strip():
            return _checked(limit, str(value).strip())
    raise Malformed(f"missing {' or '.join(names)}")


def _category_names(value: object) -> list[str]:
    """Every string in a category field (a name, a path, or the 2014 list of paths)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | dict):
        items = [*value.keys(), *value.values()] if isinstance(value, dict) else value
        return [name for item in items for name in _category_names(item)]
    return []


def _int(value: object, what: str) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise Malformed(f"{what} is not a number: {value!r}")
    try:
        number = float(str(value).replace(",", "")) if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        raise Malformed(f"{what} is not a number: {str(value)[:40]!r}") from None
    if number != number or abs(number) > 2**31 - 1:  # NaN or out of range
        raise Malformed(f"{what} is out of range: {value!r}")
    return int(number)


def _timestamp(seconds: object) -> datetime | None:
    if seconds is None or seconds == "":
        return None
    try:
        return datetime.fromtimestamp(float(seconds), tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        raise Malformed(f"timestamp is not a number of seconds: {str(seconds)[:40]!r}") from None


def _price(value: object) -> Decimal | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return Decimal(str(value)).quantize(Decimal("0.01"))
    if isinstance(value, str):
        match = _AMOUNT.search(value)  # "$25.00", "$10.99 - $19.99": the first amount
        if match:
            try:
                return Decimal(match.group().replace(",", "")).quantize(Decimal("0.01"))
            except InvalidOperation:
                return None
    return None


def review_key(
    buyer_id: str,
    product_id: str,
    reviewed_at: datetime | None,
    rating: int | None,
    title: str | None,
    text: str | None,
) -> str:
    parts = [buyer_id, product_id, reviewed_at.isoformat() if reviewed_at else "", str(rating), title or "", text or ""]
    return hashlib.sha1("\x1f".join(parts).encode()).hexdigest()


def to_review(record: dict, generation: str) -> Review:
    if generation == "2023":
        product_id = _id(record, PRODUCT_ID, "parent_asin", "asin")
        buyer_id = _id(record, BUYER_ID, "user_id")
        rating = _int(record.get("rating"), "rating")
        title, text = _text(record.get("title")), _text(record.get("text"))
        helpful, total = _int(record.get("helpful_vote"), "helpful_vote") or 0, None
        verified = record.get("verified_purchase")
        ts = record.get("timestamp")
        reviewed_at = _timestamp(float(ts) / 1000 if isinstance(ts, int | float) else ts)
        name = None
    else:
        product_id = _id(record, PRODUCT_ID, "asin")
        buyer_id = _id(record, BUYER_ID, "reviewerID")
        rating = _int(record.get("overall"), "overall")
        title, text = _text(record.get("summary")), _text(record.get("reviewText"))
        if generation == "2014":
            helpful_pair = record.get("helpful") or [0, 0]
            if not isinstance(helpful_pair, list) or len(helpful_pair) != 2:
                raise Malformed(f"helpful must be [helpful, total], found {str(helpful_pair)[:40]!r}")
            helpful, total = _int(helpful_pair[0], "helpful") or 0, _int(helpful_pair[1], "helpful total")
            verified = None
        else:
            helpful, total = _int(record.get("vote"), "vote") or 0, None
            verified = record.get("verified")
        reviewed_at = _timestamp(record.get("unixReviewTime"))
        name = _text(record.get("reviewerName"))
    if verified is not None and not isinstance(verified, bool):
        raise Malformed(f"verified flag is not a boolean: {verified!r}")
    return Review(
        review_key(buyer_id, product_id, reviewed_at, rating, title, text),
        product_id,
        buyer_id,
        name,
        rating,
        title,
        text,
        helpful,
        total,
        verified,
        reviewed_at,
    )


def to_product(record: dict, generation: str) -> Product:
    if generation == "2023":
        product_id = _id(record, PRODUCT_ID, "parent_asin", "asin")
        category = _text(record.get("main_category"))
        categories = record.get("categories")
        brand = _text(record.get("store"))
    else:
        product_id = _id(record, PRODUCT_ID, "asin")
        brand = _text(record.get("brand"))
        if generation == "2014":
            categories = record.get("categories")
            first = categories[0] if isinstance(categories, list) and categories else None
            category = _text(first[-1]) if isinstance(first, list) and first else None
        else:
            categories = record.get("category")
            category = _text(categories[-1]) if isinstance(categories, list) and categories else None
    # The category names are labels, and the JSON column cannot hold NUL either: checked as they were read.
    for name in _category_names(categories) + _category_names(record.get("main_category")):
        _checked(CATEGORY, name)
    return Product(
        product_id,
        _text(record.get("title")),
        brand,
        category,
        json.dumps(categories) if categories else None,
        _price(record.get("price")),
    )
