"""The serving index on files the publisher built: product search over the real product titles, and
files that are not whole refused. No server: the index is what every request reads."""

from __future__ import annotations

import random
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from services.api.serving.index import CorruptServingFile, ServingIndex
from services.publisher.publish import curated_range
from shared.curated import serving
from shared.lake import CuratedVersion
from shared.serving_format import NAMES, words
from tests.factories import given_relevance, real_product_titles, scored_row, scored_table

VERSION = CuratedVersion("20260701T000000Z-index1", "unused", 0, 0, datetime(2026, 7, 1, tzinfo=UTC).isoformat())


def build_index(folder: Path, rows: list[dict], version: CuratedVersion = VERSION) -> ServingIndex:
    pq.write_table(curated_range(scored_table(rows), given_relevance), folder / "curated.parquet")
    serving.build(folder / "curated.parquet", folder, version.version, reviews_kept=3)
    return ServingIndex(version, folder)


@pytest.fixture(scope="module")
def titles(data_dir: Path) -> dict[str, str]:
    return real_product_titles(data_dir)


@pytest.fixture(scope="module")
def catalogue(titles: dict[str, str], tmp_path_factory) -> ServingIndex:
    """Every product of the shared metadata (about 12,000, real titles), one to three reviews each."""
    rows = [
        scored_row(n * 10 + k, pid, 0.5, product_title=title)
        for n, (pid, title) in enumerate(sorted(titles.items()))
        for k in range(1 + n % 3)
    ]
    return build_index(tmp_path_factory.mktemp("catalogue"), rows)


def expected(titles: dict[str, str], query: str) -> list[str]:
    """What a search must find: products having, for each query word, a word of their id or title starting with it."""
    wanted = words(query)
    found = []
    for pid in sorted(titles):
        own = words(pid) + words(titles[pid])
        if all(any(w.startswith(q) for w in own) for q in wanted):
            found.append(pid)
    return found


def every_page(index: ServingIndex, query: str, limit: int) -> list[str]:
    ids, cursor = [], None
    while True:
        page, cursor = index.search(query, limit, cursor)
        ids += [p["product_id"] for p in page]
        if cursor is None:
            return ids


def test_search_finds_exactly_the_products_whose_words_start_with_the_query(catalogue, titles):
    rng = random.Random(7)
    sample = rng.sample(sorted(titles.values()), 40)
    queries = ["the", "t", "love", "b00", "greatest hits", "Rock & Roll", "Ã©", "zzzzqqq", "!!!"]
    queries += [rng.choice(words(t))[:n] for t in sample if words(t) for n in (1, 3, 50)]
    queries += [" ".join(words(t)[:2]) for t in sample if len(words(t)) >= 2]
    queries += [rng.choice(sorted(titles))]  # a product id
    for query in queries:
        assert every_page(catalogue, query, limit=25) == expected(titles, query), query


def test_listing_pages_walk_every_product_in_id_order_once(catalogue, titles):
    assert every_page(catalogue, "", limit=100) == sorted(titles)
    page, cursor = catalogue.search(None, 3, None)
    assert cursor == page[-1]["product_id"] and catalogue.search(None, 3, sorted(titles)[-2])[1] is None


def test_a_truncated_or_foreign_file_is_refused(tmp_path):
    folder = tmp_path / "v"
    folder.mkdir()
    build_index(folder, [scored_row(1, "A", 0.5), scored_row(2, "B", 0.5)])
    other = CuratedVersion("20260702T000000Z-other1", "unused", 0, 0, VERSION.published_at)
    with pytest.raises(CorruptServingFile, match="of version"):
        ServingIndex(other, folder)  # the files of one version never serve as another's
    for name in NAMES:
        broken = tmp_path / name
        shutil.copytree(folder, broken)
        data = (broken / f"{name}.arrow").read_bytes()
        (broken / f"{name}.arrow").write_bytes(data[: len(data) // 2])
        with pytest.raises(CorruptServingFile, match=name):
            ServingIndex(VERSION, broken)
