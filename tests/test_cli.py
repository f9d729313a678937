"""The command lines end to end: answers, JSON output, batching, and every kind of bad input."""

from __future__ import annotations

import json
import shutil
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from conftest import blocking_imports, run_script
from pix2struct_onnx.pipeline import DocumentQA

# ---------------------------------------------------------------- answers


def test_inference_prints_the_answer(tiny_onnx, sample_image, qa):
    result = run_script("inference.py", "-m", str(tiny_onnx), "-i", str(sample_image), "-q", "What is the total?")
    assert result.returncode == 0, result.stderr
    assert result.stdout == qa.answer(sample_image, "What is the total?").answer + "\n"


def test_inference_without_question_asks_the_default(tiny_onnx, sample_image, qa):
    result = run_script("inference.py", "-m", str(tiny_onnx), "-i", str(sample_image))
    assert result.returncode == 0, result.stderr
    default = qa.config.generation.default_question
    assert default in result.stderr
    assert result.stdout.strip() == qa.answer(sample_image, default).answer.strip()


def test_json_batch_and_jsonl(tiny_onnx, sample_image, tmp_path, qa):
    other = tmp_path / "other.png"
    Image.open(sample_image).resize((600, 300)).save(other)
    jsonl = tmp_path / "questions.jsonl"
    jsonl.write_text(json.dumps({"image": "other.png", "question": "Date?"}) + "\n\n"
                     + json.dumps({"image": str(sample_image), "question": "Sender?"}) + "\n")
    result = run_script("inference.py", "-m", str(tiny_onnx), "-i", str(sample_image), "-q", "Total?",
                        "-q", "Number?", "--jsonl", str(jsonl), "--json", "--batch-size", "3",
                        "--max-new-tokens", "8")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["question"] for r in rows] == ["Total?", "Number?", "Date?", "Sender?"]
    assert [r["batch_size"] for r in rows] == [3, 3, 3, 1]
    for row in rows:
        expected = qa.answer(row["image"], row["question"], max_new_tokens=8)
        assert row["token_ids"] == expected.token_ids and row["answer"] == expected.answer
        assert row["num_tokens"] == len(row["token_ids"]) <= 8
        assert set(row["timings"]) == {"preprocess", "encoder", "decode", "total"}
        assert all(v >= 0 for v in row["timings"].values())


def test_plain_output_for_several_questions_names_each(tiny_onnx, sample_image):
    result = run_script("inference.py", "-m", str(tiny_onnx), "-i", str(sample_image), "-q", "A?", "-q", "B?")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split("\t")[1] for line in lines] == ["A?", "B?"]


def test_inference_runs_without_torch_or_transformers(tiny_onnx, sample_image, tmp_path, qa):
    """A meta-path hook makes torch and transformers unimportable, as on a runtime-only install."""
    result = run_script("inference.py", "-m", str(tiny_onnx), "-i", str(sample_image), "-q", "Total?",
                        env=blocking_imports(tmp_path, "torch", "transformers", "onnx"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == qa.answer(sample_image, "Total?").answer.strip()


# ---------------------------------------------------------------- bad input


def assert_one_line_error(result, code: int, fragment: str):
    assert result.returncode == code, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert fragment in lines[0], lines[0]


def write_bad_images(folder: Path, sample: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    paths["not_an_image"] = folder / "notes.png"
    paths["not_an_image"].write_text("this is text, not a picture")
    data = sample.read_bytes()
    paths["truncated"] = folder / "truncated.png"
    paths["truncated"].write_bytes(data[: len(data) // 3])
    # A PNG header that claims 100000 x 100000 pixels: a decompression bomb.
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    paths["bomb"] = folder / "bomb.png"
    paths["bomb"].write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0))
                              + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))
    paths["empty_file"] = folder / "empty.jpg"
    paths["empty_file"].write_bytes(b"")
    paths["directory"] = folder / "adir.png"
    paths["directory"].mkdir()
    return paths


@pytest.mark.parametrize("case,fragment", [
    ("not_an_image", "not an image"),
    ("truncated", "truncated or corrupt"),
    ("bomb", "decompression bombs"),
    ("empty_file", "not an image"),
    ("directory", "not a file"),
    ("missing", "does not exist"),
])
def test_bad_images(tiny_onnx, sample_image, tmp_path, case, fragment):
    paths = write_bad_images(tmp_path / "bad", sample_image)
    path = paths.get(case, tmp_path / "missing.png")
    result = run_script("inference.py", "-m", str(tiny_onnx), "-i", str(path), "-q", "Total?")
    assert_one_line_error(result, 2, fragment)
    assert result.stdout == ""


@pytest.mark.parametrize("mode", ["animated_gif", "zero_pixels"])
def test_odd_images(tiny_onnx, sample_image, tmp_path, mode, qa):
    path = tmp_path / f"{mode}.gif"
    page = Image.open(sample_image).convert("RGB")
    if mode == "animated_gif":
        frames = [page.convert("P"), page.rotate(180).convert("P")]
        frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
        result = run_script("inference.py", "-m", str(tiny_onnx), "-i", str(path), "-q", "Total?")
        assert result.returncode == 0, result.stderr  # the first frame is the page
        with Image.open(path) as image:
            first = image.convert("RGB")
        assert result.stdout.strip() == qa.answer(first, "Total?").answer.strip()
    else:
        # A GIF whose logical screen is 0 x 0 pixels.
        path.write_bytes(b"GIF89a" + struct.pack("<HHBBB", 0, 0, 0, 0, 0) + b"\x2c" + struct.pack("<HHHHB", 0, 0, 0, 0, 0)
                         + b"\x02\x02\x44\x01\x00\x3b")
        result = run_script("inference.py", "-m", str(tiny_onnx), "-i", str(path), "-q", "Total?")
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("args,fragment", [
    (["-q", ""], "question is empty"),
    (["-q", "   \t "], "question is empty"),
    (["-q", "x" * 5000], "more than the limit"),
    (["-q", "\u8acb\u554f\u7e3d\u984d\u662f\u591a\u5c11\uff1f"], "no glyph"),
    (["-q", "a?", "-q", "b?", "-q", "c?", "-i", "{img}"], "cannot be paired"),
    (["-q", "a?", "--batch-size", "0"], "--batch-size"),
    (["-q", "a?", "--max-new-tokens", "0"], "--max-new-tokens"),
    (["-q", "a?", "--threads", "0"], "--threads"),
    (["-q", "a?", "--provider", "tpu"], "invalid choice"),
    (["-q", "a?", "--no-such-flag"], "unrecognized arguments"),
])
def test_bad_arguments(tiny_onnx, sample_image, tmp_path, args, fragment):
    other = tmp_path / "b.png"
    shutil.copy(sample_image, other)
    args = [a.replace("{img}", str(other)) for a in args]
    result = run_script("inference.py", "-m", str(tiny_onnx), "-i", str(sample_image), *args)
    assert_one_line_error(result, 2, fragment)


def test_long_question_taller_than_page(tiny_onnx, tmp_path):
    strip = tmp_path / "strip.png"
    Image.new("RGB", (900, 40), "white").save(strip)
    result = run_script("inference.py", "-m", str(tiny_onnx), "-i", str(strip), "-q", "What is written here? " * 30)
    assert_one_line_error(result, 2, "taller than the page")


def test_cuda_provider_missing_is_explained(tiny_onnx, sample_image):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this machine has CUDA: the provider exists")
    result = run_script("inference.py", "-m", str(tiny_onnx), "-i", str(sample_image), "-q", "a?", "--provider", "cuda")
    assert_one_line_error(result, 2, "onnxruntime-gpu")


def test_bad_jsonl(tiny_onnx, tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text('{"image": "a.png"}\n')
    result = run_script("inference.py", "-m", str(tiny_onnx), "--jsonl", str(path))
    assert_one_line_error(result, 2, "q.jsonl:1")


# ---------------------------------------------------------------- broken model folders


def broken_copy(tiny_onnx: Path, tmp_path: Path) -> Path:
    target = tmp_path / "model"
    shutil.copytree(tiny_onnx, target)
    return target


@pytest.mark.parametrize("damage,fragment", [
    (lambda m: (m / "decoder.onnx").unlink(), "decoder.onnx is missing"),
    (lambda m: (m / "encoder.onnx").write_bytes((m / "encoder.onnx").read_bytes()[:1000]), "damaged"),
    (lambda m: (m / "tokenizer.json").write_text("{}"), "tokenizer.json"),
    (lambda m: (m / "manifest.json").unlink(), "manifest.json"),
    (lambda m: (m / "manifest.json").write_text("{not json"), "unreadable"),
    (lambda m: (m / "config.json").write_text('{"format_version": 99}'), "config.json"),
    (lambda m: shutil.rmtree(m), "does not exist"),
])
def test_broken_model_folder(tiny_onnx, sample_image, tmp_path, damage, fragment):
    model = broken_copy(tiny_onnx, tmp_path)
    damage(model)
    result = run_script("inference.py", "-m", str(model), "-i", str(sample_image), "-q", "Total?")
    assert_one_line_error(result, 1, fragment)


def test_same_size_corruption_is_caught_by_verify(tiny_onnx, sample_image, tmp_path):
    model = broken_copy(tiny_onnx, tmp_path)
    data = bytearray((model / "decoder.onnx").read_bytes())
    data[-100] ^= 0xFF  # flip bits inside a weight: same size, still a loadable graph
    (model / "decoder.onnx").write_bytes(bytes(data))
    result = run_script("inference.py", "-m", str(model), "-i", str(sample_image), "-q", "Total?", "--verify")
    assert_one_line_error(result, 1, "SHA-256")


def test_garbage_graph_of_the_right_size_is_reported(tiny_onnx, tmp_path):
    from pix2struct_onnx.errors import ModelFolderError
    from pix2struct_onnx.folder import describe_files

    model = broken_copy(tiny_onnx, tmp_path)
    size = (model / "encoder.onnx").stat().st_size
    (model / "encoder.onnx").write_bytes(b"\x07" * size)
    manifest = json.loads((model / "manifest.json").read_text())
    manifest["files"] = describe_files(model)  # a manifest that agrees with the garbage
    (model / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelFolderError, match="cannot be loaded by ONNX Runtime"):
        DocumentQA(model)


def test_manifest_entry_outside_the_folder_is_refused(tiny_onnx, sample_image, tmp_path):
    model = broken_copy(tiny_onnx, tmp_path)
    manifest = json.loads((model / "manifest.json").read_text())
    manifest["files"]["../outside.txt"] = {"bytes": 1, "sha256": "0"}
    (model / "manifest.json").write_text(json.dumps(manifest))
    result = run_script("inference.py", "-m", str(model), "-i", str(sample_image), "-q", "Total?")
    assert_one_line_error(result, 1, "invalid entry")


def test_graph_with_other_names_is_refused(tiny_onnx, tmp_path):
    """A decoder whose inputs differ from what config.json names (e.g. from another exporter)."""
    import onnx

    from pix2struct_onnx.errors import ModelFolderError
    from pix2struct_onnx.folder import describe_files

    model = broken_copy(tiny_onnx, tmp_path)
    graph = onnx.load(str(model / "decoder.onnx"))
    for node in graph.graph.node:
        node.input[:] = ["ids" if name == "input_ids" else name for name in node.input]
    graph.graph.input[0].name = "ids"
    onnx.save(graph, str(model / "decoder.onnx"))
    manifest = json.loads((model / "manifest.json").read_text())
    manifest["files"] = describe_files(model)
    (model / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelFolderError, match="inputs and outputs"):
        DocumentQA(model)
