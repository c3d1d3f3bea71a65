"""Classifier benchmark on real reviews: every backend's classify stage against torch fp32 in one run,
with its quality against torch fp32; the stage against the best raw forward pass; MAX_TOKENS 128 vs 256.

    .venv/bin/python -m bench.classifier_bench [--reviews 2000] [--repeats 3]

Quality: the top label compares the label similarities (the softmax keeps their order). The stage
is the classify stage's work on the pipeline's batches (``model_outputs`` on cleaned rows,
BATCH_SIZE rows at a time): tokenising, the forward passes, pooling, labels, probe, the output
columns. It leaves out the lake's read and write (about 0.04 s a batch, BENCHMARKS.md's pipeline
section). Backends are measured in turns, one pass each per round, so the machine's noise falls on
all of them alike.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from services.classifier.encoders import Encoder, load_encoder, resolve_backend, threads
from services.classifier.evaluate import read_reviews
from services.classifier.model import EmbeddingClassifier, LabelConfig
from services.classifier.scoring import model_outputs, review_text
from shared.settings import get_settings

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
REFERENCE = "torch-fp32"
# Each row's settings (CLASSIFIER_BACKEND is the row's name unless given); torch-bf16 runs the model
# through fused_bert.py unless CLASSIFY_FUSED is off.
BACKENDS = {"torch-fp32": {}, "torch-bf16": {},
            "torch-bf16 unfused": {"classifier_backend": "torch-bf16", "classify_fused": False},
            "onnx-int8": {}, "onnx-fp32": {}, "torch-int8": {}}  # fmt: skip
RAW_BATCH_SIZES = (8, 16, 32, 64)


def sample(n: int) -> pd.DataFrame:
    """``n`` real reviews drawn across every shared file (a fixed seed), as the cleaned batch holds them."""
    df = read_reviews([DATA])
    return df.sample(n=min(n, len(df)), random_state=0).reset_index(drop=True)


def stage_seconds(df: pd.DataFrame, classifier: EmbeddingClassifier, rows_per_batch: int) -> float:
    started = time.perf_counter()
    for start in range(0, len(df), rows_per_batch):
        model_outputs(df.iloc[start : start + rows_per_batch], classifier)
    return time.perf_counter() - started


def raw_seconds(encoder: Encoder, texts: list[str]) -> float:
    """Forward passes only, over batches tokenised, length-sorted and padded beforehand."""
    batches = [batch for _, batch in encoder.batches(texts)]
    started = time.perf_counter()
    for batch in batches:
        encoder.forward(batch)
    return time.perf_counter() - started


def fmt(rates: list[float]) -> str:
    return f"{statistics.median(rates):.1f} ({min(rates):.1f}–{max(rates):.1f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reviews", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    settings = get_settings()
    df = sample(args.reviews)
    texts = [review_text(t, x) for t, x in zip(df["title"], df["text"], strict=True)]
    n, config = len(texts), LabelConfig.load(settings.labels_file)

    def classifier(**update) -> EmbeddingClassifier:
        return EmbeddingClassifier(load_encoder(settings.model_copy(update=update)), config)

    def quality(c: EmbeddingClassifier, reference: np.ndarray) -> tuple[float, float]:
        """Mean cosine to the reference embeddings, and how often the top label is the same."""
        vectors = c.encoder.encode(texts)
        top = lambda v: (v @ c._label_vectors.T).argmax(axis=1)  # noqa: E731 - the softmax keeps the order
        return float((vectors * reference).sum(1).mean()), float((top(vectors) == top(reference)).mean())

    runs = {name: classifier(**{"classifier_backend": name, **update}) for name, update in BACKENDS.items()}
    for c in runs.values():  # warm: oneDNN and ONNX Runtime prepare their kernels per input shape on first use
        c.encoder.encode(texts)
    rates: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, c in runs.items():
            rates[name].append(n / stage_seconds(df, c, settings.batch_size))
    reference = runs[REFERENCE].encoder.encode(texts)
    default = resolve_backend(settings.classifier_backend)

    print(f"{n:,} real reviews drawn from every file of the shared data; MAX_TOKENS {settings.max_tokens}, "
          f"{threads(settings)} threads, batches of {settings.classify_batch_size} texts (length-sorted), "
          f"{settings.batch_size:,} rows per stage batch; {args.repeats} rounds: median (min–max)\n")  # fmt: skip
    print("| backend | classify stage, reviews/s | × torch fp32 | mean cosine to torch fp32 "
          "| top label agrees with torch fp32 |\n|---|---|---|---|---|")  # fmt: skip
    for name, c in runs.items():
        cosine, agree = (1.0, 1.0) if name == REFERENCE else quality(c, reference)
        label, median = (f"**{name}** (default)" if name == default else name), statistics.median(rates[name])
        print(f"| {label} | {fmt(rates[name])} | {median / statistics.median(rates[REFERENCE]):.2f} "
              f"| {cosine:.4f} | {agree:.1%} |")  # fmt: skip

    # The stage against the best raw forward pass of the same backend and threads.
    raw = {}
    for batch_size in RAW_BATCH_SIZES:
        encoder = load_encoder(settings.model_copy(update={"classify_batch_size": batch_size}))
        raw_seconds(encoder, texts)  # warm, as above
        raw[batch_size] = [n / raw_seconds(encoder, texts) for _ in range(args.repeats)]
    best = max(raw, key=lambda b: statistics.median(raw[b]))
    stage = statistics.median(rates[default])
    print(f"\nStage vs raw forward pass ({default}, {threads(settings)} threads, pre-tokenised length-sorted "
          f"batches):\n\n| batch size | raw forward pass, reviews/s |\n|---|---|")  # fmt: skip
    for batch_size, r in raw.items():
        print(f"| {batch_size}{' (best)' if batch_size == best else ''} | {fmt(r)} |")
    print(f"\nclassify stage {stage:.1f} reviews/s = {stage / statistics.median(raw[best]):.0%} of the best raw "
          f"forward pass ({statistics.median(raw[best]):.1f})")  # fmt: skip

    # Truncation: the model was trained on 128 tokens; its configuration allows 256.
    print(f"\nMAX_TOKENS ({default}):\n\n| max tokens | classify stage, reviews/s | mean cosine to 256 "
          "| top label agrees with 256 |\n|---|---|---|---|")  # fmt: skip
    at = {tokens: classifier(max_tokens=tokens) for tokens in (256, 128)}
    for c in at.values():
        c.encoder.encode(texts)
    speed = {tokens: [n / stage_seconds(df, c, settings.batch_size) for _ in range(args.repeats)]
             for tokens, c in at.items()}  # fmt: skip
    full = at[256].encoder.encode(texts)
    for tokens, c in at.items():
        cosine, agree = (1.0, 1.0) if tokens == 256 else quality(c, full)
        print(f"| {tokens} | {fmt(speed[tokens])} | {cosine:.4f} | {agree:.1%} |")
    print("\nNDCG@5 of each (`python -m services.classifier.evaluate`): docs/relevance.md.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
