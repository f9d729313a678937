"""Export Pix2StructForConditionalGeneration to two control-flow-free ONNX graphs.

encoder.onnx  (flattened_patches, attention_mask) -> encoder_hidden_states, cross_key_i, cross_value_i
decoder.onnx  (input_ids, encoder_attention_mask, past_key_i, past_value_i, cross_key_i, cross_value_i)
              -> logits, present_key_i, present_value_i

Every weight lives in exactly one file: the decoder's cross-attention key/value projections sit in
the encoder graph (they only ever read the encoder states), everything else of the decoder sits in
the decoder graph. The decoder takes a self-attention past of any length, 0 included, so one graph
serves the first step and all later ones without an If node.

Reference: transformers/models/pix2struct/modeling_pix2struct.py (Pix2StructTextAttention and
Pix2StructTextModel); the decoder step below recomputes the same arithmetic with an explicit cache.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .folder import GraphNames

# Graphs with more weight bytes than this are saved with their weights in one external-data file
# (encoder.onnx.data, decoder.onnx.data). Needed above protobuf's 2 GiB limit, and better well below
# it: runtimes then map the weights from the file instead of parsing them out of a protobuf message.
# On the base model this took ONNX Runtime's load from 2.4 s to 1.1 s and its peak memory after
# load from 1,369 MB to 1,118 MB; OpenVINO's load from 4.1 s to 2.0 s and 2,378 MB to 2,007 MB.
# Small graphs (the test models) stay single files.
EXTERNAL_DATA_THRESHOLD = 16_000_000


@dataclass(frozen=True)
class ModelDims:
    """Sizes the runtime needs to allocate caches; read from the Hugging Face config."""

    num_layers: int
    num_heads: int
    d_kv: int
    vocab_size: int
    hidden_size: int
    encoder_hidden_size: int

    @classmethod
    def from_model(cls, model) -> "ModelDims":
        text = model.config.text_config
        return cls(num_layers=text.num_layers, num_heads=text.num_heads, d_kv=text.d_kv,
                   vocab_size=text.vocab_size, hidden_size=text.hidden_size,
                   encoder_hidden_size=model.config.vision_config.hidden_size)


def _split_heads(x: torch.Tensor, num_heads: int, d_kv: int) -> torch.Tensor:
    # (B, T, H*D) -> (B, H, T, D)
    batch, length = x.shape[0], x.shape[1]
    return x.view(batch, length, num_heads, d_kv).transpose(1, 2)


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    # (B, H, T, D) -> (B, T, H*D)
    batch, heads, length, d_kv = x.shape
    return x.transpose(1, 2).reshape(batch, length, heads * d_kv)


class EncoderGraph(nn.Module):
    """Vision encoder plus the per-layer cross-attention keys and values of the decoder."""

    def __init__(self, model):
        super().__init__()
        self.encoder = model.encoder
        self.cross_attention = nn.ModuleList(
            layer.encoder_decoder_attention.attention for layer in model.decoder.layer)
        text = model.config.text_config
        self.num_heads, self.d_kv = text.num_heads, text.d_kv
        vision = model.config.vision_config
        self.vision_heads, self.vision_d_kv = vision.num_attention_heads, vision.d_kv

    def vision_states(self, flattened_patches: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Pix2StructVisionModel's forward with the padding mask kept at (B, 1, 1, P).

        transformers builds a (B, H, P, P) bias in every layer (ones, 1 - mask, masked_fill, add):
        800 MB of traffic per layer at 2048 patches. Adding the broadcast (B, 1, 1, P) bias gives the
        same values: 0 for real patches, float32 min for padding, then the same clamp at min.
        """
        lowest = torch.full((), torch.finfo(torch.float32).min, dtype=torch.float32)
        bias = torch.where(attention_mask[:, None, None, :] > 0, torch.zeros((), dtype=torch.float32), lowest)
        hidden = self.encoder.embeddings(flattened_patches)  # (B, P, D)
        for layer in self.encoder.encoder.layer:
            attention = layer.attention
            normed = layer.pre_attention_layer_norm(hidden)
            query = _split_heads(attention.query(normed), self.vision_heads, self.vision_d_kv)
            key = _split_heads(attention.key(normed), self.vision_heads, self.vision_d_kv)
            value = _split_heads(attention.value(normed), self.vision_heads, self.vision_d_kv)
            scores = torch.maximum(torch.matmul(query, key.transpose(3, 2)) + bias, lowest)  # (B, H, P, P)
            weights = torch.softmax(scores, dim=-1)
            hidden = hidden + attention.output(_merge_heads(torch.matmul(weights, value)))
            hidden = hidden + layer.mlp(layer.pre_mlp_layer_norm(hidden))
        return self.encoder.layernorm(hidden)

    def forward(self, flattened_patches: torch.Tensor, attention_mask: torch.Tensor):
        # flattened_patches: (B, P, 2 + 16*16*3); attention_mask: (B, P) float, 1 = real patch
        hidden = self.vision_states(flattened_patches, attention_mask)  # (B, P, D)
        outputs = [hidden]
        for attention in self.cross_attention:
            outputs.append(_split_heads(attention.key(hidden), self.num_heads, self.d_kv))    # (B, H, P, d)
            outputs.append(_split_heads(attention.value(hidden), self.num_heads, self.d_kv))  # (B, H, P, d)
        return tuple(outputs)


def relative_position_bucket(relative_position: torch.Tensor, num_buckets: int, max_distance: int):
    """T5's unidirectional bucketing (memory - query position), as in transformers.

    The logarithm is taken of max(distance, 1): the value is only used where distance >= max_exact,
    and this keeps log(0) = -inf out of the graph (its integer cast is undefined in some runtimes).
    """
    distance = torch.clamp(-relative_position, min=0)
    max_exact = num_buckets // 2
    is_small = distance < max_exact
    log_distance = torch.log(torch.clamp(distance, min=1).float() / max_exact)
    large = max_exact + (log_distance / math.log(max_distance / max_exact)
                         * (num_buckets - max_exact)).to(torch.long)
    large = torch.clamp(large, max=num_buckets - 1)
    return torch.where(is_small, distance, large)


class DecoderGraph(nn.Module):
    """One decoding step (or several teacher-forced tokens) with an explicit self-attention cache."""

    def __init__(self, model):
        super().__init__()
        text_model = model.decoder
        text = model.config.text_config
        self.embed_tokens = text_model.embed_tokens
        self.layers = text_model.layer
        self.final_layer_norm = text_model.final_layer_norm
        self.lm_head = text_model.lm_head
        self.relative_attention_bias = text_model.layer[0].self_attention.attention.relative_attention_bias
        self.num_buckets = text.relative_attention_num_buckets
        self.max_distance = text.relative_attention_max_distance
        self.num_heads, self.d_kv = text.num_heads, text.d_kv
        self.num_layers = text.num_layers

    def forward(self, input_ids, encoder_attention_mask, *caches):
        # input_ids: (B, T); encoder_attention_mask: (B, P);
        # caches: past_key_0, past_value_0, ... (B, H, S, d) then cross_key_0, cross_value_0, ... (B, H, P, d)
        n = 2 * self.num_layers
        past, cross = caches[:n], caches[n:]
        min_value = torch.finfo(torch.float32).min
        past_length = past[0].shape[2]
        length = input_ids.shape[1]

        # Self-attention bias (1, H, T, S+T): relative position buckets plus the causal mask.
        query_position = torch.arange(length, dtype=torch.long) + past_length
        key_position = torch.arange(length + past_length, dtype=torch.long)
        relative = key_position[None, :] - query_position[:, None]
        buckets = relative_position_bucket(relative, self.num_buckets, self.max_distance)
        self_bias = self.relative_attention_bias(buckets).permute(2, 0, 1).unsqueeze(0)
        # Masks are built with Where, not by multiplying by float32 min: runtimes that compute in
        # bf16/fp16 (OpenVINO's CPU default on bf16 hardware) round that to -inf, and 0 * -inf = NaN.
        zero = torch.zeros((), dtype=torch.float32)
        lowest = torch.full((), min_value, dtype=torch.float32)
        self_bias = self_bias + torch.where(relative > 0, lowest, zero)[None, None]

        # Cross-attention bias (B, 1, 1, P): 0 for real patches, float32 min for padding.
        cross_bias = torch.where(encoder_attention_mask[:, None, None, :] > 0, zero, lowest)

        hidden = self.embed_tokens(input_ids)  # (B, T, D)
        presents = []
        for i, layer in enumerate(self.layers):
            attention = layer.self_attention.attention
            normed = layer.self_attention.layer_norm(hidden)
            query = _split_heads(attention.query(normed), self.num_heads, self.d_kv)
            key = torch.cat([past[2 * i], _split_heads(attention.key(normed), self.num_heads, self.d_kv)], dim=2)
            value = torch.cat([past[2 * i + 1], _split_heads(attention.value(normed), self.num_heads, self.d_kv)], dim=2)
            presents += [key, value]
            scores = torch.matmul(query, key.transpose(3, 2)) + self_bias  # (B, H, T, S+T)
            weights = torch.softmax(scores, dim=-1)
            hidden = hidden + attention.output(_merge_heads(torch.matmul(weights, value)))

            attention = layer.encoder_decoder_attention.attention
            normed = layer.encoder_decoder_attention.layer_norm(hidden)
            query = _split_heads(attention.query(normed), self.num_heads, self.d_kv)
            scores = torch.matmul(query, cross[2 * i].transpose(3, 2)) + cross_bias  # (B, H, T, P)
            weights = torch.softmax(scores, dim=-1)
            hidden = hidden + attention.output(_merge_heads(torch.matmul(weights, cross[2 * i + 1])))

            hidden = layer.mlp(hidden)  # pre-norm gated-GELU feed-forward with its residual

        logits = self.lm_head(self.final_layer_norm(hidden))  # (B, T, V)
        return (logits, *presents)


def _save(model_proto, path: Path, external_threshold: int) -> None:
    import onnx

    # Sum the weights rather than ask protobuf for ByteSize(), which fails past 2 GiB.
    weight_bytes = sum(len(t.raw_data) for t in model_proto.graph.initializer)
    if weight_bytes > external_threshold:
        data_name = path.name + ".data"
        onnx.save_model(model_proto, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=data_name, size_threshold=1024)
    else:
        onnx.save_model(model_proto, str(path))


def _export(module: nn.Module, args: tuple, path: Path, input_names, output_names, dynamic_axes,
            opset: int, external_threshold: int) -> None:
    """Trace with the TorchScript exporter (stable dynamic axes), then re-save weights in one place."""
    import onnx

    scratch = path.parent / (path.stem + ".trace")
    scratch.mkdir()
    traced_path = scratch / path.name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, str(traced_path), input_names=list(input_names),
                          output_names=list(output_names), dynamic_axes=dynamic_axes,
                          opset_version=opset, do_constant_folding=True, dynamo=False)
    model_proto = onnx.load(str(traced_path), load_external_data=True)
    _save(model_proto, path, external_threshold)
    for item in scratch.iterdir():
        item.unlink()
    scratch.rmdir()


def export_encoder(model, path: Path, names: GraphNames, opset: int, num_patches: int,
                   external_threshold: int = EXTERNAL_DATA_THRESHOLD) -> None:
    """Write encoder.onnx: patches and mask in, encoder states and cross-attention K/V out."""
    graph = EncoderGraph(model).eval()
    patches = torch.zeros(2, num_patches, model.config.vision_config.patch_embed_hidden_size + 2)
    patches[:, :, 0] = 1.0
    patches[:, :, 1] = 1.0
    mask = torch.ones(2, num_patches)
    axes = {"flattened_patches": {0: "batch", 1: "patches"}, "attention_mask": {0: "batch", 1: "patches"},
            names.encoder_hidden_states: {0: "batch", 1: "patches"}}
    for name in names.cross_names():
        axes[name] = {0: "batch", 2: "patches"}
    with torch.inference_mode():
        _export(graph, (patches, mask), path, ["flattened_patches", "attention_mask"],
                [names.encoder_hidden_states, *names.cross_names()], axes, opset, external_threshold)


def export_decoder(model, path: Path, names: GraphNames, opset: int,
                   external_threshold: int = EXTERNAL_DATA_THRESHOLD) -> None:
    """Write decoder.onnx: one step (or several teacher-forced tokens) with explicit past/present."""
    graph = DecoderGraph(model).eval()
    dims = ModelDims.from_model(model)
    batch, steps, past_length, patches = 2, 2, 3, 5
    input_ids = torch.zeros(batch, steps, dtype=torch.long)
    mask = torch.ones(batch, patches)
    past = [torch.zeros(batch, dims.num_heads, past_length, dims.d_kv) for _ in names.past_names()]
    cross = [torch.zeros(batch, dims.num_heads, patches, dims.d_kv) for _ in names.cross_names()]
    axes = {"input_ids": {0: "batch", 1: "steps"}, "encoder_attention_mask": {0: "batch", 1: "patches"},
            "logits": {0: "batch", 1: "steps"}}
    for name in names.past_names():
        axes[name] = {0: "batch", 2: "past_steps"}
    for name in names.present_names():
        axes[name] = {0: "batch", 2: "total_steps"}
    for name in names.cross_names():
        axes[name] = {0: "batch", 2: "patches"}
    with torch.inference_mode():
        _export(graph, (input_ids, mask, *past, *cross), path,
                ["input_ids", "encoder_attention_mask", *names.past_names(), *names.cross_names()],
                ["logits", *names.present_names()], axes, opset, external_threshold)
