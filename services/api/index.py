"""The in-memory index the API serves from: one curated version, grouped by product.

Built once per curated version, off the request path. Each review is serialised
to JSON once, at load time; a request only picks and joins ready-made fragments,
so its cost does not depend on the size of the file (no per-request S3 or Parquet).
"""

from __future__ import annotations

import json
from bisect import bisect_right
from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow as pa

from shared.lake import CuratedVersion

# Fields a storefront gets for a review; never a buyer id or pseudonym.
PUBLIC_FIELDS = (
    "review_id", "rating", "title", "text", "date", "category", "category_confidence", "relevance_score",
    "helpful_votes", "verified_purchase",
)  # fmt: skip


class ProductNotFound(LookupError):
    pass


@dataclass(frozen=True)
class Product:
    product_id: str
    title: str | None
    category: str | None
    review_count: int
    average_rating: float
    # Up to ``reviews_kept`` of its reviews, most relevant first, each pre-serialised, with
    # what the filters look at.
    fragments: tuple[bytes, ...]
    categories: tuple[str, ...]
    ratings: tuple[int, ...]
    verified: tuple[bool | None, ...]

    def summary(self) -> dict:
        return {
            "product_id": self.product_id, "title": self.title, "category": self.category,
            "review_count": self.review_count, "average_rating": round(self.average_rating, 3),
        }  # fmt: skip


class ReviewIndex:
    def __init__(self, version: CuratedVersion, products: dict[str, Product]):
        self.version = version
        self.products = products
        self.rows = sum(p.review_count for p in products.values())
        self._ids = sorted(products)  # cursor pagination walks product ids in order
        self._search = {pid: f"{pid} {p.title or ''}".lower() for pid, p in products.items()}

    @classmethod
    def build(cls, table: pa.Table, version: CuratedVersion, reviews_kept: int) -> ReviewIndex:
        """Group a curated table (sorted by product, then relevance descending) by product."""
        columns = {name: table.column(name).to_pylist() for name in (
            "product_id", "product_title", "product_category", "rating", "title", "text", "reviewed_at",
            "category", "category_confidence", "relevance_score", "helpful_votes", "verified_purchase", "review_id",
        )}  # fmt: skip
        products: dict[str, Product] = {}
        n = table.num_rows
        start = 0
        while start < n:
            pid = columns["product_id"][start]
            end = start
            while end < n and columns["product_id"][end] == pid:
                end += 1
            ratings = columns["rating"][start:end]
            kept = range(start, min(end, start + reviews_kept))
            products[pid] = Product(
                product_id=pid,
                title=columns["product_title"][start],
                category=columns["product_category"][start],
                review_count=end - start,
                average_rating=sum(ratings) / len(ratings),
                fragments=tuple(_fragment(columns, i) for i in kept),
                categories=tuple(columns["category"][i] for i in kept),
                ratings=tuple(columns["rating"][i] for i in kept),
                verified=tuple(columns["verified_purchase"][i] for i in kept),
            )
            start = end
        return cls(version, products)

    def top(
        self, product_id: str, limit: int, category: str | None = None, min_rating: int | None = None,
        verified_only: bool = False,
    ) -> bytes:  # fmt: skip
        """The JSON body of ``GET /reviews/{product_id}/top``, assembled from ready fragments."""
        product = self.products.get(product_id)
        if product is None:
            raise ProductNotFound(product_id)
        chosen: list[bytes] = []
        for i, fragment in enumerate(product.fragments):
            if category is not None and product.categories[i] != category:
                continue
            if min_rating is not None and product.ratings[i] < min_rating:
                continue
            if verified_only and product.verified[i] is not True:
                continue
            chosen.append(fragment)
            if len(chosen) == limit:
                break
        head = json.dumps({
            "product_id": product.product_id, "product_title": product.title, "version": self.version.version,
            "count": len(chosen),
        })  # fmt: skip
        return head[:-1].encode() + b', "reviews": [' + b",".join(chosen) + b"]}"

    def search(self, query: str | None, limit: int, cursor: str | None) -> tuple[list[dict], str | None]:
        """Products whose id or title contains ``query``, in product-id order after ``cursor``."""
        needle = (query or "").lower()
        start = bisect_right(self._ids, cursor) if cursor else 0
        page: list[dict] = []
        for pid in self._ids[start:]:
            if needle in self._search[pid]:
                page.append(self.products[pid].summary())
                if len(page) == limit:
                    break
        more = bool(page) and len(page) == limit and page[-1]["product_id"] != self._ids[-1]
        return page, page[-1]["product_id"] if more else None

    def age_seconds(self, now: datetime | None = None) -> float:
        published = datetime.fromisoformat(self.version.published_at)
        return ((now or datetime.now(UTC)) - published).total_seconds()


def _fragment(columns: dict[str, list], i: int) -> bytes:
    reviewed_at = columns["reviewed_at"][i]
    return json.dumps({
        "review_id": columns["review_id"][i],
        "rating": columns["rating"][i],
        "title": columns["title"][i],
        "text": columns["text"][i],
        "date": reviewed_at.date().isoformat() if reviewed_at else None,
        "category": columns["category"][i],
        "category_confidence": round(float(columns["category_confidence"][i]), 4),
        "relevance_score": round(float(columns["relevance_score"][i]), 4),
        "helpful_votes": columns["helpful_votes"][i],
        "verified_purchase": columns["verified_purchase"][i],
    }, ensure_ascii=False).encode()  # fmt: skip
