"""Classifier benchmark on real reviews: every backend's classify stage against torch fp32 reading the
model's whole 256 tokens, in one run, with its quality against it; the stage against the best raw forward
pass; MAX_TOKENS from 128 to 256; the sentences' cost (their mentions against the review's outputs alone:
read apart in the review's pass, pooled from it in context, and each sentence encoded on its own; splitting
and the sentiment's lexicon scores alone).

    .venv/bin/python -m bench.classifier_bench [--reviews 2000] [--repeats 3] [--only sentences]

Quality: the top label compares the label similarities (the softmax keeps their order). The stage
is the classify stage's work on the pipeline's batches (``model_outputs`` on cleaned rows,
BATCH_SIZE rows at a time): tokenising, the forward passes, pooling, labels, probe, the output
columns. It leaves out the lake's read and write (about 0.04 s a batch, BENCHMARKS.md's pipeline
section). Backends are measured in turns, one pass each per round, so the machine's noise falls on
all of them alike.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from research.relevance.reviews import read_reviews
from services.classifier import sentences
from services.classifier.encoders import PUBLISHED_MAX_TOKENS, Encoder, load_encoder, resolve_backend, threads
from services.classifier.lexicon import lexicon_scores
from services.classifier.model import Analysis, EmbeddingClassifier, LabelConfig
from services.classifier.scoring import model_outputs, review_spans, review_texts
from shared.settings import get_settings

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
REFERENCE = ("torch-fp32", PUBLISHED_MAX_TOKENS)  # a row: backend, MAX_TOKENS
# Each row's settings besides MAX_TOKENS 256 (CLASSIFIER_BACKEND is the row's name unless given);
# torch-bf16 runs the model through fused_bert.py unless CLASSIFY_FUSED is off.
BACKENDS = {
    "torch-fp32": {},
    "torch-bf16": {},
    "torch-bf16 unfused": {"classifier_backend": "torch-bf16", "classify_fused": False},
    "onnx-int8": {},
    "onnx-fp32": {},
    "torch-int8": {},
}
RAW_BATCH_SIZES = (8, 16, 32, 64)
TRUNCATIONS = (256, 224, 208, 192, 160, 128)


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


class ReviewsOnly:
    """The stage as it was before sentences: the review's outputs, no mention (the text is still split)."""

    def __init__(self, classifier: EmbeddingClassifier):
        self._classifier, self.labels, self.fingerprint = classifier, classifier.labels, classifier.fingerprint

    def analyse(self, texts: list[str], spans: list[list[tuple[int, int]]]) -> tuple[np.ndarray, list[Analysis]]:
        return self._classifier.infer(texts), [([], []) for _ in texts]


class InContext(ReviewsOnly):
    """Mentions pooled from the review's pass with every token attending to the whole review (before the
    segment mask): the same pass without its mask and position ids."""

    def __init__(self, classifier: EmbeddingClassifier, **encoder_changes):
        super().__init__(classifier)
        self._classifier = copy.copy(classifier)
        self._classifier.encoder = copy.copy(classifier.encoder)
        for name, value in ({"segments": False} | encoder_changes).items():
            setattr(self._classifier.encoder, name, value)

    def analyse(self, texts: list[str], spans: list[list[tuple[int, int]]]) -> tuple[np.ndarray, list[Analysis]]:
        return self._classifier.analyse(texts, spans)


class ReadAsFar(InContext):
    """The shipped stage reading a review's sentences as far as ``tokens`` (SENTENCES_MAX_TOKENS)."""

    def __init__(self, classifier: EmbeddingClassifier, tokens: int):
        encoder = classifier.encoder
        super().__init__(classifier, segments=encoder.segments, span_tokens=max(tokens, encoder.max_tokens))


class SentencesApart(ReviewsOnly):
    """Each sentence encoded on its own, a forward pass of its own beside the review's."""

    def analyse(self, texts: list[str], spans: list[list[tuple[int, int]]]) -> tuple[np.ndarray, list[Analysis]]:
        pieces = self._classifier.encoder.encode([t[a:b] for t, s in zip(texts, spans, strict=True) for a, b in s])
        covered = np.ones(len(pieces), dtype=bool)
        return self._classifier.infer(texts), self._classifier.mentions(texts, spans, pieces, covered)


def sentence_cost(df: pd.DataFrame, c: EmbeddingClassifier, rows_per_batch: int, repeats: int) -> None:
    """The stage with its sentences against the stage before them, in the same rounds."""
    ways = {
        "review outputs only (the stage before sentences)": ReviewsOnly(c),
        "+ mentions pooled from the review's forward pass, in context (before)": InContext(c),
        "+ mentions read apart in the review's forward pass, as far as MAX_TOKENS (before the tail)": ReadAsFar(
            c, c.encoder.max_tokens
        ),
        f"**+ the same, as far as SENTENCES_MAX_TOKENS ({c.encoder.span_tokens})** (shipped)": c,
        "+ the same, sentences read as far as 512 tokens": ReadAsFar(c, 512),
        "+ mentions from each sentence encoded on its own": SentencesApart(c),
    }
    texts, spans = review_spans(df)
    bodies = [t if isinstance(t, str) else "" for t in df["text"]]
    every = [text[a:b] for text, text_spans in zip(texts, spans, strict=True) for a, b in text_spans]
    rates: dict[str, list[float]] = {way: [] for way in ways}
    split_rates, lexicon_rates = [], []
    for _ in range(repeats):
        for way, classifier in ways.items():
            rates[way].append(len(df) / stage_seconds(df, classifier, rows_per_batch))
        started = time.perf_counter()
        for body in bodies:
            sentences.split(body)
        split_rates.append(len(df) / (time.perf_counter() - started))
        started = time.perf_counter()
        lexicon_scores(every)
        lexicon_rates.append(len(every) / (time.perf_counter() - started))
    n_sentences = len(every)
    base = statistics.median(rates[next(iter(ways))])
    print(
        f"\nSentences ({c.encoder.name}, MAX_TOKENS {c.encoder.max_tokens}; {n_sentences:,} sentences in "
        f"{len(df):,} reviews, {n_sentences / len(df):.1f} a review):\n\n"
        "| classify stage | reviews/s | × the stage before sentences |\n|---|---|---|"
    )
    for way, r in rates.items():
        print(f"| {way} | {fmt(r)} | {statistics.median(r) / base:.2f} |")
    print(f"\nsplitting alone: {fmt(split_rates)} reviews/s (in every row above)")
    print(f"the sentiment's lexicon scores alone: {fmt(lexicon_rates)} sentences/s (in the mentions' rows)")


def fmt(rates: list[float]) -> str:
    return f"{statistics.median(rates):.1f} ({min(rates):.1f}–{max(rates):.1f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reviews", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", choices=["sentences"], help="only the sentences' cost")
    args = parser.parse_args(argv)
    settings = get_settings()
    df = sample(args.reviews)
    texts = review_texts(df)
    n, config = len(texts), LabelConfig.load(settings.labels_file)

    def classifier(**update) -> EmbeddingClassifier:
        return EmbeddingClassifier(load_encoder(settings.model_copy(update=update)), config)

    if args.only == "sentences":
        shipped = classifier()
        shipped.encoder.encode(texts)  # warm
        sentence_cost(df, shipped, settings.batch_size, args.repeats)
        return 0

    def quality(c: EmbeddingClassifier, reference: np.ndarray) -> tuple[float, float]:
        """Mean cosine to the reference embeddings, and how often the top label is the same."""
        vectors = c.encoder.encode(texts)
        top = lambda v: c.outputs(texts, v)[:, :-1].argmax(axis=1)  # noqa: E731
        return float((vectors * reference).sum(1).mean()), float((top(vectors) == top(reference)).mean())

    default = resolve_backend(settings.classifier_backend)
    served = (default, settings.max_tokens)  # the classifier as configured: what the pipeline runs
    updates = {
        (name, PUBLISHED_MAX_TOKENS): {"classifier_backend": name, "max_tokens": PUBLISHED_MAX_TOKENS, **update}
        for name, update in BACKENDS.items()
    }
    rows = [REFERENCE, served, *updates]
    runs = {row: classifier(**updates.get(row, {})) for row in dict.fromkeys(rows)}
    for c in runs.values():  # warm: oneDNN and ONNX Runtime prepare their kernels per input shape on first use
        c.encoder.encode(texts)
    rates: dict[tuple[str, int], list[float]] = {row: [] for row in runs}
    for _ in range(args.repeats):
        for row, c in runs.items():
            rates[row].append(n / stage_seconds(df, c, settings.batch_size))
    reference = runs[REFERENCE].encoder.encode(texts)

    print(
        f"{n:,} real reviews drawn from every file of the shared data; {threads(settings)} threads, batches of "
        f"{settings.classify_batch_size} texts (length-sorted), {settings.batch_size:,} rows per stage batch; "
        f"{args.repeats} rounds: median (min–max)\n"
    )
    print(
        f"| backend | MAX_TOKENS | classify stage, reviews/s | × torch fp32 at {PUBLISHED_MAX_TOKENS} "
        "| mean cosine to it | top label agrees with it |\n|---|---|---|---|---|---|"
    )
    for row, c in runs.items():
        (name, tokens), median = row, statistics.median(rates[row])
        cosine, agree = (1.0, 1.0) if row == REFERENCE else quality(c, reference)
        label = f"**{name}** (default)" if row == served else name
        print(
            f"| {label} | {tokens} | {fmt(rates[row])} "
            f"| {median / statistics.median(rates[REFERENCE]):.2f} | {cosine:.4f} | {agree:.1%} |"
        )

    # The stage against the best raw forward pass of the same backend and threads.
    raw = {}
    for batch_size in RAW_BATCH_SIZES:
        encoder = load_encoder(settings.model_copy(update={"classify_batch_size": batch_size}))
        raw_seconds(encoder, texts)  # warm, as above
        raw[batch_size] = [n / raw_seconds(encoder, texts) for _ in range(args.repeats)]
    best = max(raw, key=lambda b: statistics.median(raw[b]))
    stage = statistics.median(rates[served])
    print(
        f"\nStage vs raw forward pass ({default}, MAX_TOKENS {settings.max_tokens}, {threads(settings)} threads, "
        "pre-tokenised length-sorted batches):\n\n"
        "| batch size | raw forward pass, reviews/s |\n|---|---|"
    )
    for batch_size, r in raw.items():
        print(f"| {batch_size}{' (best)' if batch_size == best else ''} | {fmt(r)} |")
    print(
        f"\nclassify stage {stage:.1f} reviews/s = {stage / statistics.median(raw[best]):.0%} of the best raw "
        f"forward pass ({statistics.median(raw[best]):.1f})"
    )

    # Truncation: the model was trained on 128 tokens; its configuration allows 256.
    print(
        f"\nMAX_TOKENS ({default}):\n\n| max tokens | classify stage, reviews/s "
        f"| mean cosine to {PUBLISHED_MAX_TOKENS} | top label agrees with {PUBLISHED_MAX_TOKENS} |\n"
        "|---|---|---|---|"
    )
    at = {tokens: classifier(max_tokens=tokens) for tokens in TRUNCATIONS}
    for c in at.values():
        c.encoder.encode(texts)
    speed: dict[int, list[float]] = {tokens: [] for tokens in at}
    for _ in range(args.repeats):
        for tokens, c in at.items():
            speed[tokens].append(n / stage_seconds(df, c, settings.batch_size))
    full = at[PUBLISHED_MAX_TOKENS].encoder.encode(texts)
    for tokens, c in at.items():
        cosine, agree = (1.0, 1.0) if tokens == PUBLISHED_MAX_TOKENS else quality(c, full)
        label = f"**{tokens}** (default)" if tokens == settings.max_tokens else str(tokens)
        print(f"| {label} | {fmt(speed[tokens])} | {cosine:.4f} | {agree:.1%} |")
    print("\nNDCG@5 of each (`python -m research.relevance.evaluate`): docs/relevance.md.")
    sentence_cost(df, runs[served], settings.batch_size, args.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
