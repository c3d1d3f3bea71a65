"""A BERT encoder's forward pass in bfloat16 with oneDNN's fused linear layers.

Hugging Face's BertModel runs each linear layer as a GEMM followed by separate passes for the bias,
the GELU and the residual add, and the query, key and value as three GEMMs. On a CPU with AMX those
extra passes over the activations cost as much as the GEMMs (docs/relevance.md, "Speed"). Here the
weights are prepacked once for oneDNN, the bias, GELU and residual add run as post-ops of the GEMM
(the kernels PyTorch's own compiler emits, called directly: no compile step, no C++ compiler), the
query, key and value are one GEMM, and attention is PyTorch's scaled-dot-product kernel as before.
The result is the model's own computation, in bfloat16 like the unfused path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class _Layer:
    qkv: torch.Tensor  # query, key and value weights stacked, prepacked
    qkv_bias: torch.Tensor
    out: torch.Tensor
    out_bias: torch.Tensor
    norm1: tuple[torch.Tensor, torch.Tensor, float]
    up: torch.Tensor
    up_bias: torch.Tensor
    down: torch.Tensor
    down_bias: torch.Tensor
    norm2: tuple[torch.Tensor, torch.Tensor, float]


def supports(model: Any) -> bool:
    """Whether ``model`` is a BERT encoder this module computes exactly as Hugging Face does."""
    config = model.config
    return (
        config.model_type == "bert"
        and config.hidden_act == "gelu"
        and not config.is_decoder
        and torch.backends.mkldnn.is_available()
        and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    )


def _bf16(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.detach().to(torch.bfloat16)


def _pack(weight: torch.Tensor) -> torch.Tensor:
    return torch.ops.mkldnn._reorder_linear_weight(_bf16(weight).contiguous())


def _norm(layer_norm: torch.nn.LayerNorm) -> tuple[torch.Tensor, torch.Tensor, float]:
    return _bf16(layer_norm.weight), _bf16(layer_norm.bias), layer_norm.eps


class FusedBert:
    """``FusedBert(model)(input_ids, attention_mask, token_type_ids)`` is ``model(...).last_hidden_state``
    in bfloat16. ``model`` is a Hugging Face BertModel (``supports(model)``), in any precision; its
    embedding layer, which this pass runs as it is, is cast to bfloat16 in place."""

    def __init__(self, model: Any):
        if not supports(model):
            raise ValueError(f"not a BERT encoder this forward pass computes: {model.config.model_type}")
        self._embeddings = model.embeddings.to(torch.bfloat16).eval()
        self._heads = model.config.num_attention_heads
        self._layers = []
        for layer in model.encoder.layer:
            attention, ffn_in, ffn_out = layer.attention, layer.intermediate.dense, layer.output
            q, k, v = attention.self.query, attention.self.key, attention.self.value
            self._layers.append(
                _Layer(
                    qkv=_pack(torch.cat([q.weight, k.weight, v.weight])),
                    qkv_bias=_bf16(torch.cat([q.bias, k.bias, v.bias])),
                    out=_pack(attention.output.dense.weight),
                    out_bias=_bf16(attention.output.dense.bias),
                    norm1=_norm(attention.output.LayerNorm),
                    up=_pack(ffn_in.weight),
                    up_bias=_bf16(ffn_in.bias),
                    down=_pack(ffn_out.dense.weight),
                    down_bias=_bf16(ffn_out.dense.bias),
                    norm2=_norm(ffn_out.LayerNorm),
                )
            )

    def __call__(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        segment_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``segment_mask`` (batch, 1, tokens, tokens), True where a query may attend to a key, replaces
        the padding mask (services/classifier/encoders.py, ``segment_inputs``)."""
        linear = torch.ops.mkldnn._linear_pointwise
        batch, width = input_ids.shape
        x = self._embeddings(input_ids=input_ids, token_type_ids=token_type_ids, position_ids=position_ids)
        x = x.reshape(batch * width, -1)
        hidden = x.shape[-1]
        # the keys each query may attend to
        keep = attention_mask[:, None, None, :].bool() if segment_mask is None else segment_mask
        for p in self._layers:
            qkv = linear(x, p.qkv, p.qkv_bias, "none", [], None).view(batch, width, 3, self._heads, -1)
            q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # (batch, heads, tokens, head size), strided views
            context = F.scaled_dot_product_attention(q, k, v, attn_mask=keep)
            context = context.transpose(1, 2).reshape(batch * width, hidden)
            h = F.layer_norm(linear.binary(context, x, p.out, p.out_bias, "add"), (hidden,), *p.norm1)
            up = linear(h, p.up, p.up_bias, "gelu", [], "none")  # "none": exact erf GELU, as BERT's
            x = F.layer_norm(linear.binary(up, h, p.down, p.down_bias, "add"), (hidden,), *p.norm2)
        return x.view(batch, width, hidden)
