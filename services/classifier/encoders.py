"""Sentence encoders: texts to L2-normalised mean-pooled embeddings, on ONNX Runtime or PyTorch.

One ``Encoder`` does what every backend shares: tokenise, sort by token count (similar lengths pad
less), batch, mean-pool over the attention mask and normalise, in numpy. A backend is only its
forward pass, from padded token arrays to the last hidden state:

- ``OnnxForward``: the model folder exported to ONNX and run by ONNX Runtime, its weights quantised
  to int8 or kept in fp32 (services/classifier/onnx_build.py builds and caches the graphs);
- ``TorchForward``: the model in PyTorch: fp32, bfloat16 (AMX / AVX512-BF16 CPUs), or with its Linear
  layers dynamically quantised to int8.

``Encoder.encode_spans`` reads a text's sentences in one forward pass; on PyTorch, with a segment mask that
keeps each sentence's tokens to themselves (``segment_inputs``), so a sentence reads as it would alone.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from services.classifier import onnx_build
from services.classifier.weights import ModelLoadError, model_folder
from shared.settings import Settings

Forward = Callable[[dict[str, np.ndarray]], np.ndarray]  # padded token arrays -> (batch, tokens, dim)


# encode_spans's segment mask and positions (segment_inputs): bump when their recipe changes.
SPANS_APART = "spans-apart-1"
SEP_POSITION = 32  # where [SEP] would be after a sentence of 31 tokens (1, 16, 32 measured: docs/relevance.md)

# The longest input the packaged all-MiniLM-L6-v2 is configured for (max_seq_length of its
# sentence_bert_config.json): the model as published, the reference of the quality bar.
PUBLISHED_MAX_TOKENS = 256


def threads(settings: Settings) -> int:
    """Threads per classifier process: CLASSIFY_THREADS, or the cores shared among the classifier workers
    (more threads than cores only adds contention)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return settings.classify_threads or max(1, cores // settings.classify_workers)


def mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean of the token vectors the mask keeps, L2-normalised (sentence-transformers' pooling)."""
    summed = np.einsum("btd,bt->bd", hidden, mask.astype(hidden.dtype))
    pooled = summed / np.maximum(mask.sum(axis=1, keepdims=True), 1)
    return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)


class Encoder:
    def __init__(
        self,
        tokenizer,
        forward: Forward,
        names: tuple[str, ...],
        *,
        name: str,
        digest: str,
        max_tokens: int,
        batch_size: int,
        span_tokens: int = 0,
    ):
        self._tokenizer, self.forward, self._names = tokenizer, forward, names
        self.max_tokens, self._batch_size = max_tokens, batch_size
        # how far into a text encode_spans reads its spans (never short of what the text's vector reads)
        self.span_tokens = max(span_tokens, max_tokens)
        self._pad = tokenizer.pad_token_id or 0
        # Whether encode_spans reads each span apart (a backend that takes a segment mask) or in its text's
        # context: it changes the outputs, so the name (the classifier's fingerprint) says which.
        self.segments = bool(getattr(forward, "segments", False))
        # the backend and precision, with the recipe of an exported graph, and how spans are read
        self.name = f"{name}+{SPANS_APART if self.segments else 'spans-in-context'}"
        self.digest = digest  # the model folder's content
        self.dim = int(self.forward(self._pad_batch([self._tokenize(["dimension"])[0]])).shape[-1])

    def _tokenize(self, texts: list[str]) -> list[list[int]]:
        if not texts:
            return []
        return self._tokenizer(list(texts), truncation=True, max_length=self.max_tokens)["input_ids"]

    def _pad_batch(self, rows: list[list[int]]) -> dict[str, np.ndarray]:
        width = max(len(r) for r in rows)
        batch = {
            "input_ids": np.full((len(rows), width), self._pad, dtype=np.int64),
            "attention_mask": np.zeros((len(rows), width), dtype=np.int64),
        }
        for i, r in enumerate(rows):
            batch["input_ids"][i, : len(r)] = r
            batch["attention_mask"][i, : len(r)] = 1
        if "token_type_ids" in self._names:
            batch["token_type_ids"] = np.zeros((len(rows), width), dtype=np.int64)
        return batch

    def batches(self, texts: list[str]) -> Iterator[tuple[list[int], dict[str, np.ndarray]]]:
        """(positions in ``texts``, padded token arrays), shortest texts first."""
        ids = self._tokenize(texts)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        for start in range(0, len(order), self._batch_size):
            idx = order[start : start + self._batch_size]
            yield idx, self._pad_batch([ids[i] for i in idx])

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for idx, batch in self.batches(texts):
            out[idx] = mean_pool(self.forward(batch), batch["attention_mask"])
        return out

    def encode_sentences(self, sentences: list[str]) -> np.ndarray:
        """Each sentence's vector as the classify stage reads a sentence of a review (``encode_spans``: read
        apart on a backend that takes a segment mask, so its neighbours would not change it): what the read-outs
        of services/classifier/mentions.py are fitted on."""
        return self.encode_spans(sentences, [[(0, len(s))] for s in sentences])[1]

    def encode_spans(
        self, texts: list[str], spans: list[list[tuple[int, int]]]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A vector for each text and, from the same forward passes, for each character span of each text
        (flattened, text by text): the normalised mean of the tokens that start inside it. A span the model
        does not reach has no token: its vector is zero and its entry in the third array (covered) False.

        The text's vector reads its first ``max_tokens`` tokens, as ``encode`` does. Its spans are read as far
        as ``span_tokens``: those whole inside the first ``max_tokens`` in that same row; the one it cuts and
        those past it in more rows of up to ``max_tokens`` tokens (``_windows``), so a long review's tail is
        read too, at the cost of its tokens.

        On a backend that takes a segment mask (``segments``), each span is read apart from the rest of its
        text in that one pass (``segment_inputs``): its tokens attend only to each other, as if it were
        encoded alone, whichever row it is in; the text's vector is the mean of all its tokens from that pass.
        On the others every token attends to its whole row (today's ``encode``), and a span's vector carries
        its context."""
        encoded = self._tokenizer(
            list(texts), truncation=True, max_length=self.span_tokens, return_offsets_mapping=True
        )
        first = np.cumsum([0] + [len(s) for s in spans])
        rows = [
            (i, *row)
            for i, (ids, offsets) in enumerate(zip(encoded["input_ids"], encoded["offset_mapping"], strict=True))
            for row in self._windows(ids, _token_spans(np.asarray(offsets).reshape(-1, 2), spans[i]))
        ]
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        sums = np.zeros((first[-1], self.dim), dtype=np.float32)
        counts = np.zeros(first[-1], dtype=np.int64)
        order = sorted(range(len(rows)), key=lambda r: len(rows[r][1]))
        for begin in range(0, len(order), self._batch_size):
            chunk = [rows[r] for r in order[begin : begin + self._batch_size]]
            batch = self._pad_batch([ids for _, ids, *_ in chunk])
            if self.segments:
                batch.update(
                    segment_inputs([(which, inside) for _, _, which, inside, _ in chunk], batch["attention_mask"])
                )
            hidden = self.forward(batch)
            pooled = mean_pool(hidden, batch["attention_mask"])
            for row, (i, _, which, inside, text_row) in enumerate(chunk):
                if text_row:
                    out[i] = pooled[row]
                tokens = np.flatnonzero(inside)
                if not len(tokens):
                    continue
                members, at = np.unique(which[tokens], return_inverse=True)
                matrix = np.zeros((len(members), len(tokens)), dtype=hidden.dtype)
                matrix[at, np.arange(len(tokens))] = 1
                sums[first[i] + members] += matrix @ hidden[row, tokens]
                counts[first[i] + members] += matrix.sum(axis=1).astype(np.int64)
        pieces = sums / np.maximum(counts, 1)[:, None]
        pieces /= np.maximum(np.linalg.norm(pieces, axis=1, keepdims=True), 1e-12)
        return out, pieces, counts > 0

    def _windows(self, ids: list[int], where: tuple[np.ndarray, np.ndarray]):
        """The rows ``encode_spans`` reads a text in: (token ids, each token's span and whether it starts inside
        it, as ``_token_spans`` says, with ``inside`` False for a token not pooled into its span here, whether
        the row is the text's own). The first is the text's first ``max_tokens`` tokens, as ``encode`` reads
        it; a span it cuts is pooled in a later row instead. Each later row is [CLS], then whole spans in
        order as many as fit, then [SEP]; a span longer than a row is read from its start as far as the row
        goes."""
        which, inside = where
        cls, sep = ids[0], ids[-1]
        room = self.max_tokens - 2
        if len(ids) <= self.max_tokens:
            return [(ids, which, inside, True)]
        head = list(range(self.max_tokens - 1))
        # the spans with a token at or past the first row's [SEP] are pooled in later rows
        later = np.unique(which[self.max_tokens - 1 :][inside[self.max_tokens - 1 :]])
        head_inside = inside[head] & ~np.isin(which[head], later)
        rows = [(ids[: self.max_tokens - 1] + [sep], np.append(which[head], -2), np.append(head_inside, False), True)]
        taken: list[np.ndarray] = []

        def flush() -> None:
            kept = np.concatenate(taken)
            rows.append(
                (
                    [cls, *(ids[t] for t in kept), sep],
                    np.concatenate([[-2], which[kept], [-2]]),
                    np.concatenate([[False], np.ones(len(kept), dtype=bool), [False]]),
                    False,
                )
            )
            taken.clear()

        for span in later:
            tokens = np.flatnonzero(inside & (which == span))[:room]
            if taken and sum(map(len, taken)) + len(tokens) > room:
                flush()
            taken.append(tokens)
        if taken:
            flush()
        return rows


def _token_spans(chars: np.ndarray, spans: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """For each token (its character offsets), the index of the last span starting at or before its first
    character (-1: none; special tokens -2), and whether it starts inside that span."""
    bounds = np.asarray(spans, dtype=np.int64).reshape(-1, 2)
    special = chars[:, 1] <= chars[:, 0]
    starts = chars[:, 0]
    which = np.searchsorted(bounds[:, 0], starts, side="right") - 1
    inside = ~special & (which >= 0) & (starts < bounds[which.clip(min=0), 1]) if len(bounds) else ~special & False
    return np.where(special, -2, which), inside


def segment_inputs(where: list[tuple[np.ndarray, np.ndarray]], attention_mask: np.ndarray) -> dict[str, np.ndarray]:
    """The segment mask (batch, 1, tokens, tokens; True: the query may attend to the key) and position ids
    that read each span of a text apart in one pass (docs/relevance.md, "One forward pass", the variants
    measured). A segment is a span's tokens, or a run of tokens between spans (the title, separators); a
    token attends to its own segment and to [CLS] and [SEP], which attend to each other only: they stay the
    same whatever the text says, as the attention's resting place they are in a text encoded alone. A
    segment's positions start again at 1, after [CLS], as they would alone."""
    batch, width = attention_mask.shape
    segment = np.full((batch, width), -1, dtype=np.int64)
    special = np.zeros((batch, width), dtype=bool)
    for row, (which, inside) in enumerate(where):
        n = len(which)
        special[row, :n] = which == -2
        # inside span k: 2k + 1; between span k and k + 1 (before the first: k = -1): 2k + 2
        segment[row, :n] = np.where(inside, 2 * which + 1, 2 * which + 2)
    real = attention_mask.astype(bool)
    ordinary = real & ~special
    keep = (segment[:, :, None] == segment[:, None, :]) & ordinary[:, :, None] & ordinary[:, None, :]
    keep |= real[:, :, None] & (special & real)[:, None, :]
    keep |= np.eye(width, dtype=bool)  # padding attends to itself: no query without a key
    positions = np.tile(np.arange(width, dtype=np.int64), (batch, 1))
    starts = np.ones((batch, width), dtype=bool)
    starts[:, 1:] = segment[:, 1:] != segment[:, :-1]
    run_start = np.maximum.accumulate(np.where(starts, positions, 0), axis=1)
    # [CLS] keeps position 0 and [SEP] takes SEP_POSITION whatever the text's length: were it at its place
    # in the text, its state, which every segment reads, would change with the other sentences.
    positions = np.where(ordinary, 1 + positions - run_start, np.where(positions == 0, 0, SEP_POSITION))
    return {"segment_mask": keep[:, None], "position_ids": positions}


class OnnxForward:
    # The exported graphs take the padding mask only: encode_spans reads spans in their text's context here
    # (re-exporting with a segment mask and position ids is not done; docs/relevance.md).
    segments = False

    def __init__(self, path: Path, n_threads: int):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = n_threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self._inputs = [i.name for i in self._session.get_inputs()]

    def __call__(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        return self._session.run(["last_hidden_state"], {name: batch[name] for name in self._inputs})[0]


class TorchForward:
    def __init__(self, folder: Path, n_threads: int, precision: str, fuse: bool):
        import torch
        from transformers import AutoModel

        from services.classifier import fused_bert

        configure_torch(n_threads)
        model = AutoModel.from_pretrained(folder, local_files_only=True).eval()
        if precision == "int8":
            model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
        elif precision == "bf16":
            # bfloat16 weights and activations: oneDNN runs them on AMX / AVX512-BF16 where the CPU has
            # them; elsewhere they are emulated, slower than fp32.
            if not bf16_supported():
                raise ModelLoadError(
                    "CLASSIFIER_BACKEND=torch-bf16 needs a CPU with bfloat16 instructions "
                    "(AVX512-BF16 or AMX); use torch-fp32 or onnx-int8 here"
                )
            model = model.to(torch.bfloat16)
        # bfloat16 BERT encoders run with fused linear layers (fused_bert.py); any other model as it comes.
        self.fused = fuse and precision == "bf16" and fused_bert.supports(model)
        self._run = fused_bert.FusedBert(model) if self.fused else self._unfused(model)
        self._torch = torch

    segments = True  # takes a segment mask and position ids (Encoder.encode_spans)

    @staticmethod
    def _unfused(model):
        import torch

        def run(segment_mask=None, **inputs):
            if segment_mask is not None:
                # Hugging Face takes a 4D mask as it is, added to the attention scores: 0 or the lowest value.
                dtype = model.embeddings.word_embeddings.weight.dtype  # the activations' (int8: float32)
                inputs["attention_mask"] = torch.zeros(segment_mask.shape, dtype=dtype).masked_fill(
                    ~segment_mask, torch.finfo(dtype).min
                )
            return model(**inputs).last_hidden_state

        return run

    def __call__(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        with self._torch.inference_mode():
            inputs = {name: self._torch.from_numpy(array) for name, array in batch.items()}
            return self._run(**inputs).float().numpy()


def bf16_supported() -> bool:
    """Whether oneDNN runs bfloat16 natively here (AMX / AVX512-BF16)."""
    import torch

    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def resolve_backend(name: str) -> str:
    """CLASSIFIER_BACKEND as it runs on this machine: ``auto`` takes the fastest backend that meets the
    quality bar against torch fp32 here (docs/relevance.md)."""
    if name != "auto":
        return name
    return "torch-bf16" if bf16_supported() else "torch-fp32"


def configure_torch(n_threads: int) -> None:
    import torch

    torch.set_num_threads(n_threads)  # before the first op


def load_encoder(settings: Settings) -> Encoder:
    """The sentence encoder CLASSIFIER_BACKEND names (auto, torch-bf16, -fp32, -int8, onnx-int8, -fp32)."""
    from transformers import AutoTokenizer

    folder = model_folder(settings)
    runtime, precision = resolve_backend(settings.classifier_backend).split("-")
    n_threads = threads(settings)
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        digest = onnx_build.model_digest(folder)
        if runtime == "onnx":
            cache = settings.model_cache_dir or onnx_build.default_cache_dir()
            path = onnx_build.graph(folder, precision, cache, digest)
            try:
                forward: Forward = OnnxForward(path, n_threads)
            except Exception:  # a damaged file in the cache: build it again, once
                path.unlink(missing_ok=True)
                forward = OnnxForward(onnx_build.graph(folder, precision, cache, digest), n_threads)
            name = f"onnx-{precision}-{onnx_build.RECIPE[precision]}"
        else:
            forward = TorchForward(folder, n_threads, precision, settings.classify_fused)
            name = f"torch-{precision}{'-fused' if forward.fused else ''}"
        return Encoder(
            tokenizer,
            forward,
            onnx_build.input_names(tokenizer),
            name=name,
            digest=digest,
            max_tokens=settings.max_tokens,
            batch_size=settings.classify_batch_size,
            span_tokens=settings.sentences_max_tokens,
        )
    except ModelLoadError:
        raise
    except onnx_build.OnnxBuildError as exc:
        raise ModelLoadError(f"{exc}; CLASSIFIER_BACKEND=torch-fp32 runs the model without ONNX") from exc
    except Exception as exc:  # transformers and onnxruntime raise many kinds for a broken folder or file
        raise ModelLoadError(f"model at {folder} could not be loaded: {exc}") from exc
