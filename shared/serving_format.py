"""The serving files: what the publisher writes beside each curated version and the API memory-maps.

Four Arrow IPC (Feather v2) files per version, uncompressed, so that an API process maps them and
reads only the pages its requests touch, and the workers of one host share those pages:

reviews.arrow   the ``reviews_kept`` most relevant reviews of each product, by product then relevance
                descending: the public fields a storefront gets (never a buyer id or pseudonym), as the
                answer's JSON compressed with the version's zstd dictionary, and what the filters read.
                Record batches go in pairs, one pair per range of whole products: each product's first
                HEAD reviews, then the rest of its kept ones. An unfiltered answer of up to HEAD reviews
                (the storefront's page) reads the first batch only, so the pages requests touch are few
                and stay hot; the rest is read for filters and longer pages.
products.arrow  one row per product, by product id: its summary, and where its reviews are. ``key`` is
                the id as fixed-width bytes: a binary search in C.
summaries.arrow what customers say of each product, topic by topic (shared/curated/summary.py), as the
                JSON of GET /products/{id}/summary, zstd-compressed with the dictionary in its metadata; one
                record batch per range of products, as reviews.arrow's pairs: product i's summary is in
                batch ``batch // 2`` of products.arrow, row i less the products of the batches before.
terms.arrow     (term, product row) for every word of each product's id and title, by term then
                product: a search finds the products of a word prefix without scanning the products.

Every file carries the format number and the version in its schema's metadata. In the lake each lies at
``curated/serving/<version>/<name>.arrow``, its SHA-256 and size on the object's head; the API fetches it
once per host into its cache folder.
"""

from __future__ import annotations

import re

import pyarrow as pa

FORMAT = "2"  # 2: reviews carry their topics and sentence mentions; summaries.arrow
HEAD = 5  # a product's first reviews, stored apart from the rest of its kept ones (see reviews.arrow)
SERVING_PREFIX = "curated/serving/"
# Run ids name versions; anything else in a pointer is refused before it becomes a path.
VERSION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

# A review as GET /reviews/{id}/top lists it, these fields in this order: never a buyer id or pseudonym.
PUBLIC_FIELDS = (
    "review_id",
    "rating",
    "title",
    "text",
    "date",
    "category",
    "category_confidence",
    "relevance_score",
    "helpful_votes",
    "verified_purchase",
    "topics",  # every topic its sentences discuss, most discussed first; empty before sentence topics
)

# A sentence of a review's text on a topic: code-point offsets in ``text``, and its sentiment (-1, 0, 1).
MATCH = pa.struct([("start", pa.int32()), ("end", pa.int32()), ("topic", pa.string()), ("sentiment", pa.int8())])

REVIEWS = pa.schema(
    [
        # The review's public fields as a JSON object, serialised once at publish and zstd-compressed on its
        # own with the dictionary in the schema's metadata (``zstd_dictionary``, base64; empty: none): a
        # request reads one contiguous run of bytes per product, a page or two, and joins what it unpacks.
        ("review", pa.binary()),
        # What the filters of GET /reviews/{id}/top read.
        ("category", pa.string()),
        ("rating", pa.int16()),
        ("verified_purchase", pa.bool_()),
        # Its sentences on a topic, for ?topic= (which reviews discuss it, and where in their text).
        ("mentions", pa.list_(MATCH)),
    ]
)


def products_schema(key_width: int) -> pa.Schema:
    """products.arrow; ``key`` is the product id as bytes of the version's longest id's width, which
    numpy reads as an "S<width>" array without a copy (ids hold no NUL byte)."""
    return pa.schema(
        [
            ("product_id", pa.string()),
            ("key", pa.binary(max(1, key_width))),
            ("title", pa.string()),
            ("category", pa.string()),
            ("review_count", pa.int32()),  # every curated review of the product, not only those kept
            ("average_rating", pa.float64()),  # over every curated review
            # Its first reviews: record batch of reviews.arrow (even), first row in it, how many (1 to HEAD);
            # the rest of its kept ones: first row in the batch after it, how many.
            ("batch", pa.int32()),
            ("row", pa.int32()),
            ("head", pa.int32()),
            ("rest_row", pa.int32()),
            ("rest", pa.int32()),
        ]
    )


SUMMARIES = pa.schema([("summary", pa.binary())])
TERMS = pa.schema([("term", pa.string()), ("product", pa.int32())])
NAMES = ("reviews", "products", "summaries", "terms")

_WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    """The search terms of a text, and of a query: its words, lower-cased."""
    return _WORD.findall(text.lower())


def serving_key(version: str, name: str) -> str:
    return f"{SERVING_PREFIX}{version}/{name}.arrow"


def version_of(key: str) -> str:
    """The version a serving object belongs to."""
    return key[len(SERVING_PREFIX) :].split("/", 1)[0]


def schema_metadata(version: str, **extra: str) -> dict[bytes, bytes]:
    return {k.encode(): v.encode() for k, v in {"serving_format": FORMAT, "version": version, **extra}.items()}
