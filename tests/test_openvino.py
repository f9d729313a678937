"""The same model folder runs in OpenVINO: no control flow, a zero-length past, same tokens.

This guards the design property the C++ engine relies on. OpenVINO's CPU plugin computes in bf16 by
default on CPUs that have it, so the test asks for f32, as an engine needing identical answers must.
"""

from __future__ import annotations

import numpy as np
import pytest

from pix2struct_onnx.decoding import greedy_decode
from pix2struct_onnx.pipeline import Query
from pix2struct_onnx.preprocessing import stack_patches
from pix2struct_onnx.sample import draw_sample_document

ov = pytest.importorskip("openvino")


def test_openvino_greedy_tokens_equal_onnxruntime(qa, font_path):
    core = ov.Core()
    config = {"INFERENCE_PRECISION_HINT": "f32"}
    encoder = core.compile_model(core.read_model(str(qa.folder.encoder_path)), "CPU", config)
    decoder = core.compile_model(core.read_model(str(qa.folder.decoder_path)), "CPU", config)
    names = qa.sessions.names
    queries = [Query(draw_sample_document(font_path), "What is the total?"),
               Query(draw_sample_document(font_path).resize((500, 700)), "Who is the sender?")]
    patches = stack_patches([qa.preprocess(q) for q in queries])
    outputs = encoder({"flattened_patches": patches.flattened_patches, "attention_mask": patches.attention_mask})
    cross = {name: outputs[encoder.output(name)] for name in names.cross_names()}
    onnx_cross = qa.sessions.encode(patches.flattened_patches, patches.attention_mask)
    for name in names.cross_names():
        np.testing.assert_allclose(cross[name], onnx_cross[name], atol=1e-4, rtol=0)

    generation = qa.config.generation
    past = qa.sessions.empty_past(2)  # (B, H, 0, d): the first step has an empty past
    ids = np.full((2, 1), generation.decoder_start_token_id, dtype=np.int64)
    tokens = []
    for _ in range(12):
        out = decoder({"input_ids": ids, "encoder_attention_mask": patches.attention_mask, **past, **cross})
        logits = out[decoder.output("logits")][:, -1].copy()
        logits[:, generation.eos_token_id] = -np.inf  # as min_new_tokens does below
        ids = logits.argmax(-1).astype(np.int64)[:, None]
        tokens.append(ids[:, 0])
        past = {p: out[decoder.output(q)] for p, q in zip(names.past_names(), names.present_names())}
    expected = greedy_decode(qa.sessions, onnx_cross, patches.attention_mask, generation, 12, min_new_tokens=12)
    np.testing.assert_array_equal(np.stack(tokens, axis=1), expected.tokens)
