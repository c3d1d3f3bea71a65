"""The encoder backends: the quality bar against torch fp32 on real reviews, and the loading code of any
Hugging Face encoder (ONNX export, int8, the cache keyed by the model's digest) on a tiny model built here."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import numpy as np
import pytest

from research.relevance.reviews import read_reviews
from services.classifier import encoders, onnx_build
from services.classifier.encoders import (
    PUBLISHED_MAX_TOKENS,
    bf16_supported,
    load_encoder,
    resolve_backend,
)
from services.classifier.model import load_classifier
from services.classifier.scoring import review_texts
from services.classifier.weights import ModelLoadError
from shared.settings import Settings

REVIEWS = 2000


@pytest.fixture(scope="session")
def real_texts(data_dir) -> list[str]:
    """2,000 real reviews drawn across every shared file (fixed seed), as the classify stage reads them."""
    df = read_reviews([data_dir]).sample(n=REVIEWS, random_state=0)
    return review_texts(df)


def embeddings_and_outputs(classifier, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    vectors = classifier.encoder.encode(texts)
    return vectors, classifier.outputs(texts, vectors)


@pytest.fixture(scope="session")
def fp32_reference(settings, real_texts):
    """torch fp32's embeddings and outputs of those reviews, computed once for the session."""
    return embeddings_and_outputs(
        load_classifier(settings.model_copy(update={"classifier_backend": "torch-fp32"})), real_texts
    )


def agreement_with(reference, classifier, texts: list[str]) -> tuple[float, float]:
    (vectors, outputs), (theirs, their_outputs) = reference, embeddings_and_outputs(classifier, texts)
    cosine = float((theirs * vectors).sum(axis=1).mean())
    top = float((their_outputs[:, :-1].argmax(axis=1) == outputs[:, :-1].argmax(axis=1)).mean())
    return cosine, top


@pytest.mark.model
def test_the_default_classifier_meets_the_quality_bar_against_torch_fp32_reading_the_whole_256_tokens(
    settings, real_texts
):
    defaults = Settings.model_fields
    assert defaults["classifier_backend"].default == "auto" and defaults["max_tokens"].default < PUBLISHED_MAX_TOKENS
    assert resolve_backend("auto") == ("torch-bf16" if bf16_supported() else "torch-fp32")
    published = load_classifier(
        settings.model_copy(update={"classifier_backend": "torch-fp32", "max_tokens": PUBLISHED_MAX_TOKENS})
    )
    reference = embeddings_and_outputs(published, real_texts)
    default = load_classifier(settings.model_copy(update={"max_tokens": defaults["max_tokens"].default}))
    cosine, top = agreement_with(reference, default, real_texts)
    assert cosine >= 0.99 and top >= 0.97, (cosine, top)


def test_auto_falls_back_to_torch_fp32_on_a_cpu_without_bfloat16(monkeypatch):
    monkeypatch.setattr(encoders, "bf16_supported", lambda: False)
    assert resolve_backend("auto") == "torch-fp32"
    assert resolve_backend("onnx-int8") == "onnx-int8"  # a backend named is taken as named


@pytest.mark.model
def test_onnx_int8_keeps_the_embedding_but_flips_some_near_tie_labels(settings, real_texts, fp32_reference):
    # Measured: mean cosine 0.992, top label agreement ~93%: below the 97% bar, so it is not the default.
    classifier = load_classifier(settings.model_copy(update={"classifier_backend": "onnx-int8"}))
    cosine, top = agreement_with(fp32_reference, classifier, real_texts)
    assert cosine >= 0.99 and top >= 0.90, (cosine, top)


def tiny_encoder(folder):
    """A 2-layer BERT sentence encoder with random weights, saved with its own tokenizer."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder.mkdir()
    words = "the a it this sound box arrived late broke great price quality works well music album".split()
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", *words]
    # the vocabulary as a mapping: given as a file, transformers 5 reads every word as [UNK]
    BertTokenizerFast(vocab={token: i for i, token in enumerate(tokens)}).save_pretrained(folder)
    config = BertConfig(
        vocab_size=len(words) + 6,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    torch.manual_seed(0)  # the same weights every run: bfloat16's rounding differs from one draw to the next
    BertModel(config).save_pretrained(folder)
    return folder


@pytest.fixture
def tiny(tmp_path):
    return Settings(
        model_path=str(tiny_encoder(tmp_path / "model")),
        model_cache_dir=tmp_path / "cache",
        max_tokens=32,
        classify_batch_size=2,
    )


TEXTS = ["it broke", "great sound", "the box arrived late", "", "price quality works well " * 20]


def test_any_local_encoder_runs_on_every_backend_with_the_same_embeddings(tiny):
    vectors = {
        backend: load_encoder(tiny.model_copy(update={"classifier_backend": backend})).encode(TEXTS)
        for backend in ("torch-fp32", "onnx-fp32", "onnx-int8", "torch-int8")
    }
    assert all(v.shape == (len(TEXTS), 32) for v in vectors.values())
    assert np.allclose(np.linalg.norm(vectors["onnx-int8"], axis=1), 1, atol=1e-5)
    assert (vectors["onnx-fp32"] * vectors["torch-fp32"]).sum(1).min() > 0.9999  # the exported graph is the model
    assert (vectors["onnx-int8"] * vectors["torch-fp32"]).sum(1).min() > 0.95


def test_the_onnx_graphs_are_built_once_into_a_folder_keyed_by_the_models_digest(tiny):
    int8 = tiny.model_copy(update={"classifier_backend": "onnx-int8"})
    load_encoder(int8)
    digest = onnx_build.model_digest(Path(tiny.model_path))
    built = sorted(p.name for p in (tiny.model_cache_dir / digest).iterdir())
    assert built == [f"encoder-fp32-{onnx_build.RECIPE['fp32']}.onnx", f"encoder-int8-{onnx_build.RECIPE['int8']}.onnx"]
    stamps = {p: p.stat().st_mtime_ns for p in (tiny.model_cache_dir / digest).iterdir()}
    load_encoder(int8)  # a second worker: reads, does not rebuild
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    # other weights in the same folder: another digest, another cache folder
    config = Path(tiny.model_path) / "config.json"
    config.write_text(config.read_text().replace('"hidden_act"', '"initializer_range": 0.03, "hidden_act"', 1))
    load_encoder(int8)
    assert len(list(tiny.model_cache_dir.iterdir())) == 2


def test_a_damaged_cached_graph_is_rebuilt(tiny):
    int8 = tiny.model_copy(update={"classifier_backend": "onnx-int8"})
    expected = load_encoder(int8).encode(TEXTS)
    for path in tiny.model_cache_dir.glob("*/encoder-int8-*.onnx"):
        path.write_bytes(b"truncated")
    assert np.allclose(load_encoder(int8).encode(TEXTS), expected, atol=1e-6)


def _build(folder: str, cache: str, digest: str, start) -> str:
    start.wait()  # both workers build at the same moment
    return str(onnx_build.graph(Path(folder), "int8", Path(cache), digest))


def test_two_workers_building_the_cache_at_once_both_get_a_whole_graph(tiny):
    folder = tiny.model_cache_dir / onnx_build.model_digest(Path(tiny.model_path))
    with (
        multiprocessing.get_context("spawn").Manager() as manager,
        multiprocessing.get_context("spawn").Pool(2) as pool,
    ):
        start = manager.Barrier(2)
        # from nothing (both export, then both quantise), then rounds of quantising only: the step
        # whose scratch file beside the shared fp32 graph one worker once deleted under the other
        for round in range(6):
            for int8 in folder.glob("encoder-int8-*.onnx") if round else ():
                int8.unlink()
            paths = pool.starmap(_build, [(tiny.model_path, str(tiny.model_cache_dir), folder.name, start)] * 2)
            assert paths[0] == paths[1]
    leftovers = [p.name for p in folder.iterdir() if p.suffix != ".onnx"]
    assert leftovers == []  # temporary files renamed or removed
    encoder = load_encoder(tiny.model_copy(update={"classifier_backend": "onnx-int8"}))
    assert encoder.encode(TEXTS).shape == (len(TEXTS), 32)


def test_the_fingerprint_changes_with_backend_quantisation_and_either_truncation(tiny):
    prints = {
        (backend, tokens): load_classifier(
            tiny.model_copy(update={"classifier_backend": backend, "max_tokens": tokens})
        ).fingerprint
        for backend in ("torch-fp32", "onnx-fp32", "onnx-int8", "torch-int8")
        for tokens in (16, 32)
    }
    assert len(set(prints.values())) == len(prints)
    fp32 = tiny.model_copy(update={"classifier_backend": "torch-fp32", "max_tokens": 32})
    # how far a review's sentences are read changes its mentions
    assert (
        load_classifier(fp32.model_copy(update={"sentences_max_tokens": 64})).fingerprint != prints[("torch-fp32", 32)]
    )


def test_an_unwritable_cache_is_a_clear_error(tiny, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ModelLoadError, match="MODEL_CACHE_DIR"):
        load_encoder(tiny.model_copy(update={"classifier_backend": "onnx-int8", "model_cache_dir": blocker / "x"}))


needs_bf16 = pytest.mark.skipif(not bf16_supported(), reason="this CPU has no bfloat16 instructions")


@needs_bf16
def test_bf16_runs_a_bert_encoder_with_fused_layers_computing_what_the_model_computes(tiny):
    import torch
    from transformers import AutoModel

    from services.classifier.fused_bert import FusedBert

    model = AutoModel.from_pretrained(tiny.model_path).eval()
    ids = torch.tensor([[2, 6, 7, 3, 0, 0], [2, 8, 9, 10, 11, 3]])
    mask, types = (ids > 0).long(), torch.tensor([[0] * 6, [0, 0, 0, 1, 1, 1]])
    with torch.inference_mode():
        expected = model(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
        fused = FusedBert(model)(ids, mask, types).float()
    kept = mask.bool()  # padding positions are free to differ: pooling ignores them
    assert torch.allclose(fused[kept], expected[kept], atol=0.05), (fused[kept] - expected[kept]).abs().max()

    encoder = load_encoder(tiny.model_copy(update={"classifier_backend": "torch-bf16"}))
    reference = load_encoder(tiny.model_copy(update={"classifier_backend": "torch-fp32"}))
    assert encoder.name == "torch-bf16-fused+spans-apart-1"
    assert (encoder.encode(TEXTS) * reference.encode(TEXTS)).sum(1).min() > 0.999


@needs_bf16
def test_bf16_runs_unfused_when_switched_off_or_for_another_model_under_its_own_fingerprint(tiny):
    bf16 = tiny.model_copy(update={"classifier_backend": "torch-bf16"})
    fused, off = load_classifier(bf16), load_classifier(bf16.model_copy(update={"classify_fused": False}))
    config = Path(tiny.model_path) / "config.json"
    config.write_text(config.read_text().replace('"hidden_act": "gelu"', '"hidden_act": "relu"'))
    other = load_classifier(bf16)  # not a model the fused pass computes
    names = [c.encoder.name.split("+")[0] for c in (fused, off, other)]
    assert names == ["torch-bf16-fused", "torch-bf16", "torch-bf16"]
    assert fused.fingerprint != off.fingerprint
    assert (fused.encoder.encode(TEXTS) * off.encoder.encode(TEXTS)).sum(1).min() > 0.999
    assert other.encoder.encode(TEXTS).shape == (len(TEXTS), 32)


def _first_sentence(encoder, second: str):
    text = f"it broke. {second}"
    _, pieces, covered = encoder.encode_spans([text], [[(0, 9), (10, len(text))]])
    assert covered.all()
    return pieces[0]


SPAN_BACKENDS = ["torch-fp32", "torch-int8", pytest.param("torch-bf16", marks=needs_bf16)]


@pytest.mark.parametrize("backend", SPAN_BACKENDS)
def test_a_sentence_reads_the_same_whatever_the_other_sentences_of_its_review_say(tiny, backend):
    encoder = load_encoder(tiny.model_copy(update={"classifier_backend": backend}))
    assert encoder.segments and encoder.name.endswith("+spans-apart-1")
    first = _first_sentence(encoder, "the sound works well.")
    # int8 quantises each layer's activations with one scale over the batch: the other tokens move it a little
    tolerance = 1e-3 if backend == "torch-int8" else 1e-5
    for other in ("the box arrived late.", "great price. great quality. it works well, music album."):
        assert np.allclose(_first_sentence(encoder, other), first, atol=tolerance)


def test_onnx_reads_a_sentence_in_its_review_s_context_under_its_own_name(tiny):
    encoder = load_encoder(tiny.model_copy(update={"classifier_backend": "onnx-fp32"}))
    assert not encoder.segments and encoder.name.endswith("+spans-in-context")
    reference = load_encoder(tiny.model_copy(update={"classifier_backend": "torch-fp32"}))
    reference.segments = False  # the same pass without the mask: what the ONNX graph computes
    first = _first_sentence(reference, "the sound works well.")
    assert not np.allclose(_first_sentence(reference, "the box arrived late. great price."), first, atol=1e-5)
    assert (_first_sentence(encoder, "the sound works well.") @ first) > 0.9999


LONG_REVIEW = [
    "it broke.",
    "the sound works well.",
    "the box arrived late.",
    "great price.",
    "great quality.",
    "this music album works well.",
    "it arrived late.",
    "the sound quality works.",
    "the price it works.",
    "a great box.",
    "this album.",
    "it works well.",
    "the music album arrived late.",
    "great sound quality.",
    "a box.",
    "the album works.",
]


@pytest.mark.parametrize("backend", SPAN_BACKENDS)
def test_a_long_review_s_sentences_are_read_past_max_tokens_each_as_if_alone(tiny, backend):
    text = " ".join(LONG_REVIEW)
    spans = [(text.index(s), text.index(s) + len(s)) for s in LONG_REVIEW]
    settings = tiny.model_copy(update={"classifier_backend": backend, "sentences_max_tokens": 128})
    encoder = load_encoder(settings)
    ids = encoder._tokenizer(text)["input_ids"]
    assert 1 not in ids and len(ids) > 2 * tiny.max_tokens  # words, not [UNK]; three rows: the text's and two more
    vector, pieces, covered = encoder.encode_spans([text], [spans])
    tolerance = 1e-5 if backend == "torch-fp32" else 2e-3  # int8's scale and bf16's kernels follow the batch
    assert covered.all()
    # the one the first row cuts, and those past it, read whole and apart: as each sentence alone
    assert np.allclose(pieces, encoder.encode_sentences(LONG_REVIEW), atol=tolerance)
    # the text's own vector still reads its first MAX_TOKENS tokens only
    short = load_encoder(settings.model_copy(update={"sentences_max_tokens": tiny.max_tokens}))
    vector_short, pieces_short, covered_short = short.encode_spans([text], [spans])
    assert np.allclose(vector, vector_short, atol=tolerance)
    assert 0 < covered_short.sum() < len(LONG_REVIEW)  # without: the tail is not read
    read = covered_short.copy()
    read[covered_short.sum() - 1] = False  # the sentence the first row cuts is read in part there
    assert np.allclose(pieces[read], pieces_short[read], atol=tolerance)
    # nothing past SENTENCES_MAX_TOKENS is read
    shorter = load_encoder(settings.model_copy(update={"sentences_max_tokens": 48}))
    assert covered_short.sum() < shorter.encode_spans([text], [spans])[2].sum() < len(LONG_REVIEW)
