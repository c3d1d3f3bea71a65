"""Reviews read from the public files: one file is one category."""

from __future__ import annotations

from research.relevance.reviews import category_of


def test_a_category_is_the_public_file_it_comes_from(tmp_path):
    assert category_of(tmp_path / "reviews_Digital_Music_5.json.gz") == "Digital_Music"
    assert category_of(tmp_path / "AMAZON_FASHION_5.json.gz") == "AMAZON_FASHION"
    assert category_of(tmp_path / "All_Beauty.jsonl") == "All_Beauty"
