"""The benchmark harness end to end on the tiny model (the full-size run is documented in README)."""

from __future__ import annotations

import json
import re

from conftest import run_script
from pix2struct_onnx.benchmark import encoder_gflop


def test_quick_benchmark_writes_consistent_results(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    # an evaluate.py output already there is picked up as the accuracy section
    (out / "evaluation.json").write_text(json.dumps({"annotations": "ann.json", "questions": 3, "variants": {
        "model": {"anls": 0.6543, "exact_match": 0.5, "questions": 3, "predictions": ["a", "b", "c"]}}}))
    result = run_script("benchmark.py", "--quick", "--levers", "--workdir", str(tmp_path / "work"),
                        "--output-dir", str(out))
    assert result.returncode == 0, result.stderr
    results = json.loads((out / "results.json").read_text())
    assert results["weights"].startswith("random weights")
    names = [v["name"] for v in results["variants"]]
    assert names[0].startswith("PyTorch") and any("int8" in n for n in names)
    for variant in results["variants"]:
        assert len(variant["runs_raw"]) == results["runs"]
        assert all(len(r["steps"]) == results["tokens"] for r in variant["runs_raw"])  # forced length
        assert variant["size_bytes"] > 0 and variant["peak_rss_bytes"] > 0
        assert variant["total"]["median"] >= variant["encoder"]["median"]
    fp32 = next(v for v in results["variants"] if v["name"] == "ONNX Runtime fp32")
    assert fp32["identical_to_reference"], "fp32 ONNX must give PyTorch's tokens"
    if results["native_missing"] is None:  # the C++ engine is built: fp32 answers equal too, cache or not
        native = [v for v in results["variants"] if v["kind"] == "native" and "int8" not in v["name"]]
        assert len(native) == 2 and all(v["identical_to_reference"] for v in native)
    report = (out / "results.md").read_text()
    assert report.splitlines()[2].startswith("**Weights: random weights")
    # the four figures in the table come from the JSON
    for variant in results["variants"]:
        row = next(line for line in report.splitlines() if line.startswith(f"| {variant['name']} |"))
        numbers = re.findall(r"[\d,]+\.\d+", row)
        assert numbers[0] == f"{variant['size_bytes'] / 1e6:,.1f}"
        assert numbers[1] == f"{variant['total']['median']:.2f}"
    assert (out / "results-latency.png").stat().st_size > 1000
    assert "| model | 65.4 | 50.0 |" in report
    levers = results["levers"]
    assert levers[1]["threads"] == 1 and levers[2]["tuning"] == {"graph_optimization": "basic"}
    for lever in levers:
        row = next(line for line in report.splitlines() if line.startswith(f"| {lever['name']} |"))
        assert f"{lever['total']['median']:.2f}" in row
        assert lever["identical_to_reference"], "runtime settings must not change the answer"


def test_encoder_gflop_of_the_base_architecture():
    from pix2struct_onnx.random_model import FULL_SIZE

    config = {"vision_config": FULL_SIZE["vision"], "text_config": FULL_SIZE["text"]}
    # hand count for P=2048, D=768, F=2048, 12 layers; cross K/V for 12 decoder layers
    p, d, f = 2048, 768, 2048
    layer = 2 * p * 4 * d * d + 4 * p * p * d + 2 * p * 3 * d * f
    expected = (12 * layer + 2 * p * 768 * d + 2 * p * d * d * 2 * 12) / 1e9
    assert abs(encoder_gflop(config, 2048) - expected) < 1e-9
    assert 560 < expected < 580


def test_refused_int8_folder_leaves_the_other_variants(tmp_path, monkeypatch):
    """With real weights an int8 folder that fails its check is reported, not benchmarked."""
    from pix2struct_onnx import benchmark, convert_cli
    from pix2struct_onnx.errors import ConversionError

    real_convert = convert_cli.convert

    def refusing_int8(model, output, **kwargs):
        if kwargs.get("quantize") == "int8":
            raise ConversionError("the int8 graphs do not match PyTorch: greedy tokens differ")
        return real_convert(model, output, **kwargs)

    monkeypatch.setattr(convert_cli, "convert", refusing_int8)
    out = tmp_path / "out"
    assert benchmark.main(["--quick", "--runs", "1", "--workdir", str(tmp_path / "work"),
                           "--output-dir", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    names = [v["name"] for v in results["variants"]]
    assert [n for n in names if not n.startswith("Native")] == ["PyTorch fp32 (transformers)", "ONNX Runtime fp32"]
    assert not any("int8" in n for n in names)
    assert "greedy tokens differ" in results["int8_refused"]
    assert "refused the int8 folder" in (out / "results.md").read_text()
