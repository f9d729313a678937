"""convert.py: atomic output, the built-in fidelity check, and its errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT, blocking_imports, run_script
from pix2struct_onnx.convert_cli import convert
from pix2struct_onnx.errors import ConversionError


def leftovers(parent):
    return sorted(p.name for p in parent.iterdir())


def test_convert_cli_writes_a_checked_folder(tiny_hf, font_path, tmp_path):
    result = run_script("convert.py", "--model", str(tiny_hf), "--output", str(tmp_path / "model"),
                        "--font", str(font_path))
    assert result.returncode == 0, result.stderr
    assert "[6/6]" in result.stderr and "identical: True" in result.stderr  # progress on the terminal
    assert leftovers(tmp_path) == ["model"]
    assert (tmp_path / "model" / "encoder.onnx").is_file()


def test_refuses_non_empty_output_without_force(tiny_hf, font_path, tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "keep.txt").write_text("user data")
    result = run_script("convert.py", "--model", str(tiny_hf), "--output", str(target), "--font", str(font_path))
    assert result.returncode == 2 and "--force" in result.stderr
    assert leftovers(target) == ["keep.txt"]
    result = run_script("convert.py", "--model", str(tiny_hf), "--output", str(target), "--font", str(font_path),
                        "--force")
    assert result.returncode == 0, result.stderr
    assert "keep.txt" not in leftovers(target) and "manifest.json" in leftovers(target)
    assert leftovers(tmp_path) == ["model"]


def test_failed_fidelity_check_keeps_nothing(tiny_hf, font_path, tmp_path, monkeypatch):
    """A graph that is subtly wrong (no relative position bias) must be caught and discarded."""
    import torch

    from pix2struct_onnx import export

    monkeypatch.setattr(export, "relative_position_bucket",
                        lambda relative, *_: torch.zeros_like(relative))
    with pytest.raises(ConversionError, match="do not match PyTorch"):
        convert(str(tiny_hf), tmp_path / "model", font=str(font_path))
    assert leftovers(tmp_path) == []


def test_interrupted_export_leaves_nothing(tiny_hf, font_path, tmp_path, monkeypatch):
    from pix2struct_onnx import export

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(export, "export_decoder", interrupted)
    with pytest.raises(KeyboardInterrupt):
        convert(str(tiny_hf), tmp_path / "model", font=str(font_path))
    assert leftovers(tmp_path) == []


def test_sigterm_midway_leaves_nothing(tiny_hf, font_path, tmp_path):
    """A real process, terminated once its staging folder has files in it."""
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "convert.py"), "--model", str(tiny_hf), "--output", str(tmp_path / "model"),
         "--font", str(font_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ))
    deadline = time.time() + 120
    while time.time() < deadline:
        staging = [p for p in tmp_path.iterdir() if p.name.startswith(".model.partial-")]
        if staging and any(staging[0].iterdir()):
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode != 0, "conversion finished before it could be interrupted"
    assert b"Traceback" not in stderr
    assert leftovers(tmp_path) == []


def test_offline_hub_id_without_cache(tmp_path, font_path):
    result = run_script("convert.py", "--model", "google/pix2struct-docvqa-base", "--output", str(tmp_path / "m"),
                        "--font", str(font_path), env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")})
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 2  # the progress stage, then the one-line error
    assert "no network and no copy in the Hugging Face cache" in result.stderr
    assert leftovers(tmp_path) == ["hf"] or leftovers(tmp_path) == []


def test_offline_without_font(tiny_hf, tmp_path):
    result = run_script("convert.py", "--model", str(tiny_hf), "--output", str(tmp_path / "m"),
                        env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")})
    assert result.returncode == 1 and "--font" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("args,fragment", [
    (["--opset", "9"], "--opset"),
    (["--font", "/no/such/font.ttf"], "font /no/such/font.ttf does not exist"),
    (["--max-new-tokens", "0"], "--max-new-tokens"),
])
def test_bad_convert_arguments(tiny_hf, font_path, tmp_path, args, fragment):
    base = ["--model", str(tiny_hf), "--output", str(tmp_path / "m")]
    if "--font" not in args:
        base += ["--font", str(font_path)]
    result = run_script("convert.py", *base, *args)
    assert result.returncode == 2, result.stderr
    assert fragment in result.stderr.strip().splitlines()[-1] and "Traceback" not in result.stderr
    assert not (tmp_path / "m").exists()


def test_not_a_model_folder(tmp_path, font_path):
    (tmp_path / "empty").mkdir()
    result = run_script("convert.py", "--model", str(tmp_path / "empty"), "--output", str(tmp_path / "m"),
                        "--font", str(font_path))
    assert result.returncode == 2 and "config.json" in result.stderr


def test_int8_folder_is_checked_and_records_agreement(tiny_hf, font_path, tmp_path, hf_model):
    """int8 runs the same checks with its own tolerances; a failure stops it unless accepted."""
    manifest = convert(str(tiny_hf), tmp_path / "int8", font=str(font_path), quantize="int8",
                       accept_int8_disagreement=True)
    fidelity = manifest["fidelity"]
    assert manifest["precision"] == "int8" and manifest["fidelity_fp32_export"]["passed"]
    assert fidelity["tolerances"]["logits"] > manifest["fidelity_fp32_export"]["tolerances"]["logits"]
    assert 0.0 <= fidelity["top1_agreement"] <= 1.0
    identical = fidelity["onnx_tokens"] == fidelity["reference_tokens"]
    assert (fidelity["first_difference"] is None) == identical
    assert fidelity["passed"] == (not fidelity["failures"])
    import onnx

    ops = {n.op_type for n in onnx.load(str(tmp_path / "int8" / "decoder.onnx")).graph.node}
    assert {"MatMulInteger", "DynamicQuantizeLinear"} <= ops
    fp32_weights = sum(p.numel() * 4 for p in hf_model.parameters())
    assert manifest["graph_bytes"] < fp32_weights * 0.5
    if fidelity["passed"]:
        return
    with pytest.raises(ConversionError, match="int8 graphs do not match PyTorch"):
        convert(str(tiny_hf), tmp_path / "strict", font=str(font_path), quantize="int8")
    assert not (tmp_path / "strict").exists()


def test_convert_without_export_extras_says_what_to_install(tiny_hf, font_path, tmp_path):
    result = run_script("convert.py", "--model", str(tiny_hf), "--output", str(tmp_path / "m"),
                        "--font", str(font_path), env=blocking_imports(tmp_path, "torch"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "pip install torch==2.13.0" in result.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "m").exists()
