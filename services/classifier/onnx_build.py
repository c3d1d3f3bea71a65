"""The sentence encoder as ONNX graphs, built offline from the model folder and cached by its digest.

    python -m services.classifier.onnx_build     # build the configured model's graphs now, before a worker needs them

Nothing is downloaded: the graph is exported from the local weights with ``torch.onnx`` (the
TorchScript exporter: a plain graph that ONNX Runtime fuses itself when it loads it), then its
weights are quantised with ONNX Runtime's ``quantize_dynamic``. The files live in
``<cache>/<model digest>/``: another model, or the same folder with other weights, gets another
folder, and the same weights elsewhere on disk reuse it. Each file is written to a temporary name
and renamed into place, so worker processes that start together never read a half-written graph
(each may build it; the last rename wins, with the same content).
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Literal

from services.classifier.weights import model_folder
from shared.settings import get_settings

Precision = Literal["fp32", "int8"]

OPSET = 17
# Per-channel int8 weights of every MatMul (the Linear layers), activations quantised per batch:
# per-tensor weights lose too much (mean cosine to fp32 0.947 on real reviews, per-channel 0.992),
# and quantising the embedding Gather too gains no speed and costs a little accuracy.
INT8 = {"per_channel": True, "op_types_to_quantize": ["MatMul"]}
# In the file names and the classifier's fingerprint: a new recipe is a new graph and new outputs.
RECIPE = {"fp32": f"opset{OPSET}", "int8": f"opset{OPSET}-matmul-per-channel-s8"}
# The files that make a model's outputs: weights, configuration, vocabulary (not its README).
_MODEL_FILES = (".json", ".safetensors", ".bin", ".txt", ".model")


class OnnxBuildError(RuntimeError):
    pass


def model_digest(folder: Path) -> str:
    """A digest of the files in the model folder that its outputs depend on."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in _MODEL_FILES):
        digest.update(path.name.encode() + b"\0")
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()[:20]


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "review-intelligence" / "onnx"


def graph(folder: Path, precision: Precision, cache_dir: Path, digest: str) -> Path:
    """The model's ONNX graph at this precision, built into the cache if it is not there yet."""
    target = cache_dir / digest / f"encoder-{precision}-{RECIPE[precision]}.onnx"
    if target.is_file():
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OnnxBuildError(f"cannot create the ONNX cache folder {target.parent} (MODEL_CACHE_DIR): {exc}") from exc
    source = graph(folder, "fp32", cache_dir, digest) if precision == "int8" else None
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        if source is None:
            export(folder, Path(tmp))
        else:
            quantize(source, Path(tmp))
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the graph is no secret, and may serve other users
        os.replace(tmp, target)
    except Exception as exc:
        raise OnnxBuildError(f"could not build the {precision} ONNX graph of {folder}: {exc!r}") from exc
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def export(folder: Path, out: Path) -> None:
    """The encoder's last hidden state for (batch, length) token inputs, exported from the local weights."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    # Eager attention: a plain graph of MatMul and Softmax that ONNX Runtime fuses and quantises.
    model = AutoModel.from_pretrained(folder, local_files_only=True, attn_implementation="eager").eval()
    names = input_names(tokenizer)
    sample = tokenizer(["a short text", "and a somewhat longer second text"], padding=True, return_tensors="pt")

    class LastHidden(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, *inputs):
            return self.model(**dict(zip(names, inputs, strict=True))).last_hidden_state

    axes = {name: {0: "batch", 1: "tokens"} for name in (*names, "last_hidden_state")}
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")  # the exporter's tracer warnings on shape arithmetic
        torch.onnx.export(
            LastHidden(),
            tuple(sample[n] for n in names),
            str(out),
            input_names=list(names),
            output_names=["last_hidden_state"],
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,
            external_data=False,
        )


def quantize(source: Path, out: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # its advice to pre-process the graph first: for static quantisation only
    try:
        # Handed the graph, not its path: given a path, quantize_dynamic writes a scratch "-inferred" copy
        # beside it, in the shared cache folder, where a worker quantising at the same time deletes it.
        quantize_dynamic(onnx.load(source), out, weight_type=QuantType.QInt8, **INT8)
    finally:
        root.setLevel(level)


def input_names(tokenizer) -> tuple[str, ...]:
    """What the model reads, in a fixed order: BERT-like models take token types, others do not."""
    return tuple(n for n in ("input_ids", "attention_mask", "token_type_ids") if n in tokenizer.model_input_names)


def main(argv: list[str] | None = None) -> int:
    settings = get_settings()
    folder = model_folder(settings)
    cache = settings.model_cache_dir or default_cache_dir()
    digest = model_digest(folder)
    for precision in ("fp32", "int8"):
        print(graph(folder, precision, cache, digest))
    return 0


if __name__ == "__main__":
    sys.exit(main())
