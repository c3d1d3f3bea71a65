"""Zero-shot review classifiers: embedding similarity (default, offline) or an NLI model.

The embedding classifier is one, whatever runs its sentence encoder (services/classifier/encoders.py:
PyTorch bf16 where the CPU has it, else fp32, by default; PyTorch int8, ONNX Runtime int8 or fp32):
labels, temperature, probe and the handling of texts with nothing to read live here only.

A classifier turns texts into one vector each: the probability of every label
(summing to 1) followed by the model's usefulness signal in [0, 1]. It is loaded
once per worker process; a missing or broken model fails the load with a clear
message, not every task.
"""

from __future__ import annotations

import copy
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import yaml

from services.classifier import sentences
from services.classifier.encoders import Encoder, configure_torch, load_encoder, threads
from services.classifier.mentions import SentimentProbe, TopicHead, read_sentences, review_mentions
from services.classifier.probe import Probe
from services.classifier.weights import ModelLoadError
from shared.settings import Settings

__all__ = ["Classifier", "EmbeddingClassifier", "LabelConfig", "ModelLoadError", "NliClassifier", "load_classifier"]

DEFAULT_LABELS = Path(__file__).with_name("labels.yaml")
_HAS_WORD = re.compile(r"\w", re.UNICODE)


@dataclass(frozen=True)
class LabelConfig:
    labels: dict[str, list[str]]
    informative: list[str]
    uninformative: list[str]
    temperature: float
    # A usefulness probe fitted to real helpful votes (services/classifier/probe.py), for the
    # embedding backend; without one, usefulness is zero-shot similarity to the sentences above.
    probe: Path | None = None
    # A sentence's topic or none (mentions.TopicHead), fitted for these labels by research/topics/fit_topics.py.
    topics: Path | None = None
    sentiment: Path | None = None  # the sentiment read-out of a sentence's vector (mentions.SentimentProbe)

    @classmethod
    def load(cls, path: Path | None) -> LabelConfig:
        path = path or DEFAULT_LABELS
        try:
            data = yaml.safe_load(path.read_text())
            return cls(
                labels={str(k): [str(d) for d in v] for k, v in data["labels"].items()},
                informative=list(data["usefulness"]["informative"]),
                uninformative=list(data["usefulness"]["uninformative"]),
                temperature=float(data.get("temperature", 0.05)),
                probe=path.parent / data["usefulness"]["probe"] if data["usefulness"].get("probe") else None,
                topics=path.parent / data["mentions"]["topics"],
                sentiment=path.parent / data["mentions"]["sentiment"],
            )
        except (OSError, KeyError, TypeError, AttributeError, yaml.YAMLError) as exc:
            raise ModelLoadError(f"labels file {path} is unreadable or incomplete: {exc!r}") from exc

    def digest(self) -> str:
        return hashlib.sha1(repr(self).encode()).hexdigest()[:12]


# One review's analysis: its mentions (dicts of the scored schema's ``mentions`` struct, offsets in the text
# the caller gave) and its topics, most-discussed first.
Analysis = tuple[list[dict], list[str]]


class Classifier(Protocol):
    labels: list[str]
    fingerprint: str  # changes with anything that changes the outputs: the cache key's salt

    def infer(self, texts: list[str]) -> np.ndarray:
        """(n, len(labels) + 1): label probabilities, then the usefulness signal."""

    def analyse(self, texts: list[str], spans: list[list[tuple[int, int]]]) -> tuple[np.ndarray, list[Analysis]]:
        """``infer(texts)`` and, for each text, the mentions of its sentences (``spans``, character offsets)."""


def _softmax(x: np.ndarray) -> np.ndarray:
    z = np.exp(x - x.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def _no_words(texts: list[str]) -> np.ndarray:
    """Texts with nothing to read (empty, emoji-only, markup-only): no model opinion on them."""
    return np.array([not _HAS_WORD.search(t or "") for t in texts], dtype=bool)


def _neutral(rows: np.ndarray, n_labels: int) -> np.ndarray:
    """Uniform label probabilities (the lowest confidence there is) and no usefulness."""
    rows[:, :n_labels] = 1.0 / n_labels
    rows[:, n_labels] = 0.0
    return rows


def _load_probe(path: Path | None) -> Probe | None:
    if path is None:
        return None
    try:
        return Probe.load(path)
    except (OSError, KeyError, ValueError) as exc:
        raise ModelLoadError(f"usefulness probe {path} is missing or unreadable: {exc!r}") from exc


def _load_sentiment(path: Path | None) -> SentimentProbe:
    try:
        if path is None:
            raise ValueError("labels file has no mentions.sentiment")
        return SentimentProbe.load(path)
    except (OSError, KeyError, ValueError) as exc:
        raise ModelLoadError(f"sentiment probe {path} is missing or unreadable: {exc!r}") from exc


def _load_topic_head(path: Path | None, labels: list[str]) -> TopicHead:
    try:
        if path is None:
            raise ValueError("labels file has no mentions.topics")
        head = TopicHead.load(path)
    except (OSError, KeyError, ValueError) as exc:
        raise ModelLoadError(f"topic head {path} is missing or unreadable: {exc!r}") from exc
    if list(head.labels) != labels:
        raise ModelLoadError(
            f"topic head {path} was fitted for the labels {list(head.labels)}, not {labels}: "
            "refit it (python -m research.topics.fit_topics)"
        )
    return head


class EmbeddingClassifier:
    """Cosine similarity between a review's embedding and each label's descriptions.

    Probabilities are a softmax of the similarities divided by a temperature: the
    similarities of a sentence encoder sit in a narrow band, and the temperature
    spreads them so that the top label's probability means something.
    """

    def __init__(self, encoder: Encoder, config: LabelConfig):
        self.encoder = encoder
        self._temperature = config.temperature
        self.labels = list(config.labels)
        self.label_vectors = np.stack([encoder.encode(d).mean(axis=0) for d in config.labels.values()])
        self.label_vectors /= np.linalg.norm(self.label_vectors, axis=1, keepdims=True)
        self._informative = encoder.encode(config.informative).mean(axis=0)
        self._uninformative = encoder.encode(config.uninformative).mean(axis=0)
        self.topic_head = _load_topic_head(config.topics, self.labels)
        self.sentiment = _load_sentiment(config.sentiment)
        self._config_digest = config.digest()
        self._set_probe(_load_probe(config.probe))

    def _set_probe(self, probe: Probe | None) -> None:
        self._probe = probe
        probe_digest = probe.digest() if probe else "zero-shot"
        # The model's content (not its folder), the backend and its quantisation recipe, the labels,
        # the probes and the topic head, the truncation and the sentence rule: all that changes the outputs.
        self.fingerprint = hashlib.sha1(
            f"emb|{self.encoder.digest}|{self.encoder.name}|{self._config_digest}|{probe_digest}|"
            f"{self.encoder.max_tokens}|{self.encoder.span_tokens}|{self.sentiment.digest()}|{self.topic_head.digest()}|sentences-{sentences.VERSION}".encode()
        ).hexdigest()[:16]

    def with_probe(self, probe: Probe) -> EmbeddingClassifier:
        """The same encoder and labels reading usefulness with another probe (an evaluation's refit)."""
        other = copy.copy(self)
        other._set_probe(probe)
        return other

    def infer(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, len(self.labels) + 1), dtype=np.float32)
        return self.outputs(texts, self.encoder.encode(texts))

    def analyse(self, texts: list[str], spans: list[list[tuple[int, int]]]) -> tuple[np.ndarray, list[Analysis]]:
        if not texts:
            return np.zeros((0, len(self.labels) + 1), dtype=np.float32), []
        vectors, pieces, covered = self.encoder.encode_spans(texts, spans)
        return self.outputs(texts, vectors), self.mentions(texts, spans, pieces, covered)

    def mentions(
        self, texts: list[str], spans: list[list[tuple[int, int]]], pieces: np.ndarray, covered: np.ndarray
    ) -> list[Analysis]:
        """Each text's analysis from its sentences' vectors (``Encoder.encode_spans``) and words; a sentence
        past the truncation (not covered) is no mention: the model did not read it."""
        every = [text[a:b] for text, text_spans in zip(texts, spans, strict=True) for a, b in text_spans]
        sentences_read = [sentence for sentence, f in zip(every, covered, strict=True) if f]
        reading = read_sentences(pieces[covered], self.topic_head, self.sentiment, sentences_read)
        kept, at, result = np.cumsum(covered) - covered, 0, []
        for text_spans in spans:
            flags = covered[at : at + len(text_spans)]
            read = [span for span, f in zip(text_spans, flags, strict=True) if f]
            result.append(review_mentions(read, reading, int(kept[at]) if len(text_spans) else 0, self.labels))
            at += len(text_spans)
        return result

    def outputs(self, texts: list[str], vectors: np.ndarray) -> np.ndarray:
        """``infer(texts)`` from the texts' embeddings, for a caller that keeps them."""
        n_labels = len(self.labels)
        result = np.zeros((len(texts), n_labels + 1), dtype=np.float32)
        result[:, :n_labels] = _softmax(vectors @ self.label_vectors.T / self._temperature)
        if self._probe is not None:
            result[:, n_labels] = self._probe.usefulness(vectors)
        else:
            margin = vectors @ self._informative - vectors @ self._uninformative
            result[:, n_labels] = 1 / (1 + np.exp(-margin / self._temperature))
        blank = _no_words(texts)
        result[blank] = _neutral(result[blank], n_labels)
        return result


class NliClassifier:
    """The transformers zero-shot-classification pipeline over any NLI model (one pass per label)."""

    HYPOTHESIS = "This review is about {}."
    USEFUL = ("a detailed and specific review", "a vague and short review")

    def __init__(self, settings: Settings, config: LabelConfig):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

        if not settings.nli_model:
            raise ModelLoadError("CLASSIFIER_BACKEND=nli needs NLI_MODEL: a model id or a local folder")
        configure_torch(threads(settings))
        try:
            # Loaded here with local_files_only: no hub is reached, an absent model fails now.
            tokenizer = AutoTokenizer.from_pretrained(settings.nli_model, local_files_only=True)
            model = AutoModelForSequenceClassification.from_pretrained(settings.nli_model, local_files_only=True)
            self._pipe = pipeline("zero-shot-classification", model=model, tokenizer=tokenizer, device=-1)
        except Exception as exc:
            raise ModelLoadError(f"NLI model {settings.nli_model} could not be loaded: {exc}") from exc
        self._batch_size = settings.classify_batch_size
        self._max_chars = settings.max_tokens * 6  # the pipeline truncates tokens; cap the work before it
        self.labels = list(config.labels)
        self.fingerprint = hashlib.sha1(f"nli|{settings.nli_model}|{config.digest()}".encode()).hexdigest()[:16]

    def _scores(self, texts: list[str], labels: list[str], template: str) -> np.ndarray:
        outputs = self._pipe(
            [t[: self._max_chars] for t in texts],
            candidate_labels=labels,
            hypothesis_template=template,
            batch_size=self._batch_size,
        )
        outputs = [outputs] if isinstance(outputs, dict) else outputs
        position = {label: i for i, label in enumerate(labels)}
        scores = np.zeros((len(texts), len(labels)), dtype=np.float32)
        for row, out in enumerate(outputs):
            for label, score in zip(out["labels"], out["scores"], strict=True):
                scores[row, position[label]] = score
        return scores

    def analyse(self, texts: list[str], spans: list[list[tuple[int, int]]]) -> tuple[np.ndarray, list[Analysis]]:
        """The NLI backend reads whole reviews only: no sentence gets a topic (one pass per label per
        sentence would cost several times the review's)."""
        return self.infer(texts), [([], []) for _ in texts]

    def infer(self, texts: list[str]) -> np.ndarray:
        n_labels = len(self.labels)
        result = np.zeros((len(texts), n_labels + 1), dtype=np.float32)
        blank = _no_words(texts)
        readable = [t for t, b in zip(texts, blank, strict=True) if not b]
        if readable:
            probs = self._scores(readable, self.labels, self.HYPOTHESIS)
            useful = self._scores(readable, list(self.USEFUL), "This is {}.")[:, 0]
            result[~blank, :n_labels] = probs
            result[~blank, n_labels] = useful
        result[blank] = _neutral(result[blank], n_labels)
        return result


def load_classifier(settings: Settings) -> Classifier:
    config = LabelConfig.load(settings.labels_file)
    if settings.classifier_backend == "nli":
        return NliClassifier(settings, config)
    return EmbeddingClassifier(load_encoder(settings), config)
