"""The serving files: what the publisher writes beside each curated version and the API memory-maps.

Three Arrow IPC (Feather v2) files per version, uncompressed, so that an API process maps them and
reads only the pages its requests touch, and the workers of one host share those pages:

reviews.arrow   the ``reviews_kept`` most relevant reviews of each product, by product then relevance
                descending: the public fields a storefront gets (never a buyer id or pseudonym), as the
                answer's JSON, and what the filters read. Each record batch holds whole products.
products.arrow  one row per product, by product id: its summary, and where its reviews are (batch,
                row, how many). ``key`` is the id as fixed-width bytes: a binary search in C.
terms.arrow     (term, product row) for every word of each product's id and title, by term then
                product: a search finds the products of a word prefix without scanning the products.

Every file carries the format number and the version in its schema's metadata. In the lake each is
zstd-compressed (a third of the bytes to move) at ``curated/serving/<version>/<name>.zst``, its
SHA-256 and unpacked size on the object's head; the API unpacks it once into its cache folder.
"""

from __future__ import annotations

import re

import pyarrow as pa

FORMAT = "1"
SERVING_PREFIX = "curated/serving/"
# Run ids name versions; anything else in a pointer is refused before it becomes a path.
VERSION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

# A review as GET /reviews/{id}/top lists it, these fields in this order: never a buyer id or pseudonym.
PUBLIC_FIELDS = (
    "review_id", "rating", "title", "text", "date", "category", "category_confidence", "relevance_score",
    "helpful_votes", "verified_purchase",
)  # fmt: skip

REVIEWS = pa.schema([
    # The review's public fields as a JSON object, serialised once at publish: a request reads one
    # contiguous run of bytes per product (a page or two) and joins it, whatever the fields.
    ("review", pa.binary()),
    # What the filters of GET /reviews/{id}/top read.
    ("category", pa.string()),
    ("rating", pa.int16()),
    ("verified_purchase", pa.bool_()),
])  # fmt: skip


def products_schema(key_width: int) -> pa.Schema:
    """products.arrow; ``key`` is the product id as bytes of the version's longest id's width, which
    numpy reads as an "S<width>" array without a copy (ids hold no NUL byte)."""
    return pa.schema([
        ("product_id", pa.string()),
        ("key", pa.binary(max(1, key_width))),
        ("title", pa.string()),
        ("category", pa.string()),
        ("review_count", pa.int32()),  # every curated review of the product, not only those kept
        ("average_rating", pa.float64()),  # over every curated review
        ("batch", pa.int32()),  # its kept reviews: record batch of reviews.arrow, first row in it, how many
        ("row", pa.int32()),
        ("kept", pa.int32()),
    ])  # fmt: skip


TERMS = pa.schema([("term", pa.string()), ("product", pa.int32())])
NAMES = ("reviews", "products", "terms")

_WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    """The search terms of a text, and of a query: its words, lower-cased."""
    return _WORD.findall(text.lower())


def serving_key(version: str, name: str) -> str:
    return f"{SERVING_PREFIX}{version}/{name}.arrow.zst"


def version_of(key: str) -> str:
    """The version a serving object belongs to."""
    return key[len(SERVING_PREFIX) :].split("/", 1)[0]


def schema_metadata(version: str, **extra: str) -> dict[bytes, bytes]:
    return {k.encode(): v.encode() for k, v in {"serving_format": FORMAT, "version": version, **extra}.items()}
