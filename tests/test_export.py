"""The ONNX graphs against PyTorch, and the structural properties the design promises."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch

from pix2struct_onnx.folder import open_model_folder

# fp32 graphs: differences come from operation order only.
ENCODER_ATOL = 1e-4
LOGITS_ATOL = 1e-4


def random_patches(batch: int, num_patches: int, real: list[int], seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    patches = torch.randn(batch, num_patches, 770, generator=generator)
    mask = torch.zeros(batch, num_patches)
    for b, count in enumerate(real):
        patches[b, :, 0] = torch.arange(num_patches) // 8 + 1
        patches[b, :, 1] = torch.arange(num_patches) % 8 + 1
        patches[b, count:] = 0
        mask[b, :count] = 1
    return patches, mask


def test_no_control_flow_and_dynamic_axes(tiny_onnx):
    for name in ("encoder.onnx", "decoder.onnx"):
        graph = onnx.load(str(tiny_onnx / name)).graph
        ops = {node.op_type for node in graph.node}
        assert not ops & {"If", "Loop", "Scan"}, f"{name} has control flow: {ops & {'If', 'Loop', 'Scan'}}"
        for value in graph.input:
            first = value.type.tensor_type.shape.dim[0]
            assert first.dim_param == "batch", f"{name}:{value.name} batch axis is not dynamic"
    decoder = onnx.load(str(tiny_onnx / "decoder.onnx")).graph
    inputs = {v.name: v for v in decoder.input}
    assert inputs["input_ids"].type.tensor_type.shape.dim[1].dim_param == "steps"
    assert inputs["past_key_0"].type.tensor_type.shape.dim[2].dim_param == "past_steps"


def test_weights_stored_once(tiny_onnx, hf_model):
    """The graphs together hold each weight once: at most 1% above the checkpoint's fp32 bytes."""
    manifest = json.loads((tiny_onnx / "manifest.json").read_text())
    weight_bytes = sum(p.numel() * 4 for p in hf_model.parameters())
    graph_bytes = (tiny_onnx / "encoder.onnx").stat().st_size + (tiny_onnx / "decoder.onnx").stat().st_size
    assert manifest["weight_bytes"] == weight_bytes
    # The tiny model's graph structure is a larger share than in the full model (1.4 MB of weights),
    # so allow the structure's fixed cost here; the full-size figure is in the benchmark.
    assert graph_bytes <= weight_bytes * 1.01 + 150_000
    # Element counts per graph: the cross-attention K/V projections sit only in the encoder.
    cross = sum(p.numel() for n, p in hf_model.named_parameters()
                if "encoder_decoder_attention.attention.key" in n or "encoder_decoder_attention.attention.value" in n)
    encoder_params = sum(p.numel() for p in hf_model.encoder.parameters())
    decoder_params = sum(p.numel() for p in hf_model.decoder.parameters())

    def elements(name):
        return sum(int(np.prod(i.dims)) for i in onnx.load(str(tiny_onnx / name)).graph.initializer
                   if len(i.dims) >= 1 and np.prod(i.dims) > 1)

    assert cross > 0
    assert elements("encoder.onnx") == encoder_params + cross
    assert elements("decoder.onnx") == decoder_params - cross


def test_encoder_matches_pytorch(qa, hf_model):
    patches, mask = random_patches(3, 64, [64, 40, 7])
    onnx_out = qa.sessions.encode_with_states(patches.numpy(), mask.numpy())
    with torch.inference_mode():
        ref = hf_model.encoder(flattened_patches=patches, attention_mask=mask).last_hidden_state.numpy()
    for b, count in enumerate([64, 40, 7]):
        np.testing.assert_allclose(onnx_out[0][b, :count], ref[b, :count], atol=ENCODER_ATOL, rtol=0)


def test_decoder_step_by_step_equals_pytorch_and_prefill(qa, hf_model):
    patches, mask = random_patches(2, 64, [64, 30], seed=1)
    cross = qa.sessions.encode(patches.numpy(), mask.numpy())
    tokens = np.array([[0, 5, 9, 17, 3, 40], [0, 7, 7, 2, 60, 11]], dtype=np.int64)
    with torch.inference_mode():
        ref = hf_model(flattened_patches=patches, attention_mask=mask,
                       decoder_input_ids=torch.from_numpy(tokens)).logits.numpy()
    # one token at a time, starting from a zero-length past
    past = qa.sessions.empty_past(2)
    for t in range(tokens.shape[1]):
        logits, past = qa.sessions.decode_step(tokens[:, t:t + 1], mask.numpy(), past, cross)
        np.testing.assert_allclose(logits[:, 0], ref[:, t], atol=LOGITS_ATOL, rtol=0)
    assert past["past_key_0"].shape[2] == tokens.shape[1]
    # all tokens at once (dynamic step count), then two more after a prefilled past
    logits, _ = qa.sessions.decode_step(tokens, mask.numpy(), qa.sessions.empty_past(2), cross)
    np.testing.assert_allclose(logits, ref, atol=LOGITS_ATOL, rtol=0)
    _, past = qa.sessions.decode_step(tokens[:, :4], mask.numpy(), qa.sessions.empty_past(2), cross)
    logits, _ = qa.sessions.decode_step(tokens[:, 4:], mask.numpy(), past, cross)
    np.testing.assert_allclose(logits, ref[:, 4:], atol=LOGITS_ATOL, rtol=0)


def test_manifest_records_provenance_and_fidelity(tiny_onnx):
    folder = open_model_folder(tiny_onnx, verify_checksums=True)
    manifest = folder.manifest
    assert manifest["fidelity"]["passed"] is True
    assert manifest["fidelity"]["onnx_tokens"] == manifest["fidelity"]["reference_tokens"]
    assert {"torch", "transformers", "onnx", "onnxruntime"} <= set(manifest["libraries"])
    assert manifest["opset"] == 17
    assert set(manifest["files"]) == {"encoder.onnx", "decoder.onnx", "tokenizer.json", "font.ttf",
                                      "config.json"}


def test_external_data_for_large_graphs(tmp_path, hf_model):
    """Graphs above the threshold are written with one external-data file and still run."""
    import onnxruntime as ort

    from pix2struct_onnx.export import export_decoder
    from pix2struct_onnx.folder import GraphNames

    path = tmp_path / "decoder.onnx"
    export_decoder(hf_model, path, GraphNames(hf_model.config.text_config.num_layers), 17,
                   external_threshold=1000)
    assert (tmp_path / "decoder.onnx.data").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["decoder.onnx", "decoder.onnx.data"]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert session.get_outputs()[0].name == "logits"


@pytest.mark.parametrize("opset", [14, 18])
def test_other_opsets_convert(tmp_path, tiny_hf, font_path, opset):
    from pix2struct_onnx.convert_cli import convert

    manifest = convert(str(tiny_hf), tmp_path / "m", font=str(font_path), opset=opset)
    assert manifest["opset"] == opset and manifest["fidelity"]["passed"]
