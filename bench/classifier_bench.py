"""Classifier benchmark on real reviews: the classify stage against the raw model forward pass on
the same texts in the same run; fp32 against int8; a re-run with 1% new reviews through the cache.

    .venv/bin/python -m bench.classifier_bench [--reviews 800] [--data ../shared/data/amazon-2014/digital_music]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from services.classifier.evaluate import features, read_reviews
from services.classifier.model import EmbeddingClassifier, LabelConfig
from services.classifier.scoring import review_text, score_batch
from shared.settings import get_settings

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "amazon-2014" / "digital_music"


class DictCache:
    def __init__(self):
        self.store: dict[str, np.ndarray] = {}

    def get_many(self, keys):
        return {k: self.store[k] for k in keys if k in self.store}

    def put_many(self, entries):
        self.store.update(entries)


def raw_forward(classifier: EmbeddingClassifier, texts: list[str], batch_size: int, max_tokens: int) -> None:
    """Tokenise and run the model in input order: the work the stage cannot avoid, and nothing else."""
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            batch = classifier._tokenizer(texts[start : start + batch_size], padding=True, truncation=True,
                                          max_length=max_tokens, return_tensors="pt")  # fmt: skip
            classifier._model(**batch)


def timed(fn, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reviews", type=int, default=800)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args(argv)
    settings = get_settings()
    df = features(read_reviews([args.data]).head(args.reviews))
    texts = [review_text(t, x) for t, x in zip(df["title"], df["text"], strict=True)]
    config = LabelConfig.load(settings.labels_file)
    n = len(texts)
    print(f"{n} real reviews ({args.data.name}), max_tokens {settings.max_tokens}, torch threads "
          f"{torch.get_num_threads()}, {args.repeats} repeats: median (min–max) reviews/s\n")  # fmt: skip

    print("| batch size | raw forward pass | classify stage (score_batch) | stage overhead |\n|---|---|---|---|")
    fp32 = None
    for batch_size in (16, 64, 256):
        fp32 = EmbeddingClassifier(settings.model_copy(update={"classify_batch_size": batch_size}), config)
        raw = [n / t for t in timed(lambda: raw_forward(fp32, texts, batch_size, settings.max_tokens), args.repeats)]
        stage = [n / t for t in timed(lambda: score_batch(df, fp32, settings), args.repeats)]
        overhead = statistics.median(raw) / statistics.median(stage) - 1
        print(f"| {batch_size} | {statistics.median(raw):.1f} ({min(raw):.1f}–{max(raw):.1f}) "
              f"| {statistics.median(stage):.1f} ({min(stage):.1f}–{max(stage):.1f}) | {overhead:+.0%} |")  # fmt: skip

    fp32 = EmbeddingClassifier(settings, config)
    int8 = EmbeddingClassifier(settings.model_copy(update={"quantize_int8": True}), config)
    speeds = {name: [n / t for t in timed(lambda c=c: c.infer(texts), args.repeats)]
              for name, c in (("fp32", fp32), ("int8", int8))}  # fmt: skip
    a, b = fp32.infer(texts), int8.infer(texts)
    k = len(fp32.labels)
    agreement = float((a[:, :k].argmax(1) == b[:, :k].argmax(1)).mean())
    ea, eb = fp32.encode(texts), int8.encode(texts)
    cosine = float((ea * eb).sum(1).mean())
    print("\n| model | reviews/s | top label agrees with fp32 | embedding cosine to fp32 |\n|---|---|---|---|")
    for name in ("fp32", "int8"):
        s = speeds[name]
        agree, cos = ("100%", "1.000") if name == "fp32" else (f"{agreement:.1%}", f"{cosine:.3f}")
        print(f"| {name} | {statistics.median(s):.1f} ({min(s):.1f}–{max(s):.1f}) | {agree} | {cos} |")

    cache = DictCache()
    full = timed(lambda: score_batch(df, fp32, settings, cache=cache), 1)[0]
    changed = df.sample(frac=0.01, random_state=0).index
    reruns = []
    for i in range(args.repeats):  # new edits each time: every re-run meets 1% unseen texts
        fresh = df.copy()
        fresh.loc[changed, "text"] = fresh.loc[changed, "text"] + f" (edit {i})"
        reruns.append(timed(lambda f=fresh: score_batch(f, fp32, settings, cache=cache), 1)[0])
    rerun = statistics.median(reruns)
    print(f"\ncache: full run {full:.2f} s (cold cache), re-run with {len(changed)} new reviews (1%) "
          f"{rerun:.3f} s: {rerun / full:.1%} of the full run")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
