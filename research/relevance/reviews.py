"""Reviews read straight from the public files, in any of the three formats, with what the research
needs of each: its product, title and text (cleaned as the pipeline cleans them), helpful votes, purchase
flag, date and category (one public file is one category)."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from ops.source.formats import Malformed, detect, parse_line, to_review
from ops.source.loader import discover, read_lines
from services.transformer.transform import clean_text


def category_of(path: Path) -> str:
    """The public formats publish one file per category: reviews_Digital_Music_5.json.gz -> Digital_Music."""
    name = re.sub(r"\.(json|jsonl)(\.gz)?$", "", path.name)
    return re.sub(r"_5$", "", re.sub(r"^reviews_", "", name))


def read_reviews(paths: list[Path]) -> pd.DataFrame:
    rows = []
    for path in discover(paths):
        generation = None
        for _, line in read_lines(path, progress=False):
            try:
                record = parse_line(line)
                if generation is None:
                    kind, generation = detect(record, path.name)
                    if kind != "review":
                        break
                r = to_review(record, generation)
            except Malformed:
                continue
            rows.append(
                {
                    "product_id": r.product_id,
                    "title": clean_text(r.title),
                    "text": clean_text(r.text),
                    "rating": r.rating,
                    "helpful_votes": r.helpful_votes,
                    "verified_purchase": r.verified_purchase,
                    "reviewed_at": r.reviewed_at,
                    "review_key": r.review_key,
                    "category": category_of(path),
                }
            )
    df = pd.DataFrame(rows).drop_duplicates("review_key")
    return df[df["text"].str.len() > 0].reset_index(drop=True)
