"""What customers say of a product, topic by topic: the summary the publisher computes from its reviews'
sentence mentions (``mentions`` in shared/schemas.py) and the serving files carry, one per product.

For each topic the product's sentences carry (an abstained sentence carries none):

reviews    the reviews with at least one sentence on the topic
mentions   those sentences; ``positive`` and ``negative`` are shares of them (the rest are neutral)
quotes     one positive and one negative sentence, from the most relevant review that has one (the rows of a
           product come most relevant first), the most confident of its sentences; trimmed to QUOTE_CHARS on
           a word boundary

Topics come most discussed first (reviews, then sentences, then name). A review without mentions (one of a
version published before them) counts in ``review_count`` only. The counting is vectorised over a whole
range of products; Python touches each (product, topic) once, to write its JSON.
"""

from __future__ import annotations

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

QUOTE_CHARS = 160  # a quote longer than this is cut at the last word boundary before it, with an ellipsis
_SIDES = (("positive_quote", 1), ("negative_quote", -1))


def trim(sentence: str, limit: int = QUOTE_CHARS) -> str:
    """The sentence, whitespace collapsed, cut at a word boundary with "…" when longer than ``limit``."""
    text = " ".join(sentence.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit // 2:  # a word boundary not too far back; else one very long word is cut inside
        cut = cut[:space]
    return cut.rstrip(" ,.;:-–—") + "…"


def _flat(rows: pa.Table) -> dict[str, np.ndarray]:
    """Every mention with a topic of the rows, as arrays: the row it belongs to, its topic's code in
    ``labels``, and its fields."""
    mentions = rows.column("mentions").combine_chunks()
    parent = pc.list_parent_indices(mentions).to_numpy(zero_copy_only=False)
    flat = pc.list_flatten(mentions)
    topic = flat.field("topic")
    keep = topic.is_valid().to_numpy(zero_copy_only=False)
    coded = pc.filter(topic, pa.array(keep)).dictionary_encode()  # in C: np.unique would sort Python strings
    return {
        "labels": np.array(coded.dictionary.to_pylist(), dtype=object),
        "code": coded.indices.to_numpy(zero_copy_only=False).astype(np.int64),
        "row": parent[keep].astype(np.int64),
        "sentiment": np.nan_to_num(flat.field("sentiment").to_numpy(zero_copy_only=False)[keep]).astype(np.int64),
        "confidence": np.nan_to_num(flat.field("confidence").to_numpy(zero_copy_only=False)[keep], nan=0.0),
        "start": flat.field("start").to_numpy(zero_copy_only=False)[keep],
        "end": flat.field("end").to_numpy(zero_copy_only=False)[keep],
    }


def summaries(rows: pa.Table, starts: np.ndarray, counts: np.ndarray) -> list[bytes]:
    """The JSON summary of each product of a range (its rows from ``starts`` for ``counts``, most relevant
    first), as ``GET /products/{id}/summary`` answers after its product id, title and version."""
    product_of_row = np.repeat(np.arange(len(starts)), counts)
    m = _flat(rows)
    labels, code = m["labels"], m["code"]
    width = max(1, len(labels))
    key = product_of_row[m["row"]] * width + code  # (product, topic), in one integer
    size = len(starts) * width
    sentences = np.bincount(key, minlength=size)
    positive = np.bincount(key, weights=m["sentiment"] > 0, minlength=size)
    negative = np.bincount(key, weights=m["sentiment"] < 0, minlength=size)
    pairs = np.unique(m["row"] * width + code)  # each (review, topic) once
    reviews = np.bincount(product_of_row[pairs // width] * width + pairs % width, minlength=size)
    analysed = np.bincount(product_of_row[np.unique(m["row"])], minlength=len(starts))
    quotes: dict[tuple[int, int], dict] = {}
    texts = rows.column("text")
    ids = rows.column("review_id")
    for sign in (1, -1):
        chosen = np.flatnonzero(m["sentiment"] == sign)
        # the most relevant review first (its row), then its most confident sentence
        chosen = chosen[np.lexsort((-m["confidence"][chosen], m["row"][chosen], key[chosen]))]
        _, first = np.unique(key[chosen], return_index=True)
        for i in chosen[first]:
            row = int(m["row"][i])
            text = texts[row].as_py() or ""
            quotes[(int(key[i]), sign)] = {
                "review_id": ids[row].as_py(),
                "text": trim(text[int(m["start"][i]) : int(m["end"][i])]),
            }
    out = []
    for product, count in enumerate(counts.tolist()):
        base = product * width
        found = np.flatnonzero(sentences[base : base + width])
        order = sorted(found.tolist(), key=lambda t: (-reviews[base + t], -sentences[base + t], labels[t]))
        topics = []
        for t in order:
            k = base + t
            topics.append(
                {
                    "topic": labels[t],
                    "reviews": int(reviews[k]),
                    "mentions": int(sentences[k]),
                    "positive": round(float(positive[k] / sentences[k]), 4),
                    "negative": round(float(negative[k] / sentences[k]), 4),
                    **{side: quotes.get((k, sign)) for side, sign in _SIDES},
                }
            )
        summary = {"review_count": count, "reviews_analysed": int(analysed[product]), "topics": topics}
        out.append(orjson.dumps(summary))
    return out
