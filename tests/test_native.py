"""The native C++ engine (pix2struct_native, built from cpp/) against inference.py and transformers.

Tolerances, stated once:
- decoded images (PNG, JPEG, EXIF orientation): identical bytes to Pillow's;
- the question header canvas: identical bytes to Pillow's drawing and resize;
- flattened patches: max |C++ - Python| <= 1e-5 (the values span about -1..+10; the two sides sum
  the per-image mean and std in a different order);
- token ids: identical to inference.py's (ONNX Runtime) and to transformers' generate.

Without the module these tests are skipped, unless P2S_REQUIRE_NATIVE=1 (set by .ci/run), which
makes a missing build a failure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, blocking_imports, run_script
from pix2struct_onnx.pipeline import Query, trim_generated
from pix2struct_onnx.preprocessing import load_font, load_image, render_header
from pix2struct_onnx.sample import draw_sample_document

if os.environ.get("P2S_REQUIRE_NATIVE") == "1":
    import pix2struct_native as native
else:
    native = pytest.importorskip("pix2struct_native", reason="native engine not built (pip install ./cpp)")

PATCH_TOLERANCE = 1e-5
QUESTIONS = ["What is the invoice number?", "Who is the sender?",
             "Total (incl. VAT) on page 2/3 - in EUR, 'net'?",
             "What is the total amount due, including taxes, shipping, handling and every other charge listed "
             "anywhere on this page, in euros?"]


def with_orientation(image: Image.Image, orientation: int) -> Image.Image:
    """The image stored so that EXIF orientation `orientation` shows it upright again."""
    inverse = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
               5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_90, 7: Image.Transpose.TRANSVERSE,
               8: Image.Transpose.ROTATE_270}
    return image.transpose(inverse[orientation])


@pytest.fixture(scope="module")
def pages(tmp_path_factory, font_path) -> list[Path]:
    """Document pages of several sizes, modes and formats, written as files."""
    folder = tmp_path_factory.mktemp("native-pages")
    invoice = draw_sample_document(font_path)
    paths = []

    def save(image: Image.Image, name: str, **kwargs) -> None:
        image.save(folder / name, **kwargs)
        paths.append(folder / name)

    save(invoice, "invoice.png")
    save(invoice.resize((1400, 500)), "wide.jpg", quality=90)
    save(invoice.crop((40, 40, 460, 360)).convert("L"), "grey-small.png")
    save(invoice.convert("P", palette=Image.Palette.ADAPTIVE), "palette.png")
    exif = Image.Exif()
    exif[0x0112] = 6
    save(with_orientation(invoice.resize((600, 800)), 6), "rotated.jpg", exif=exif, quality=95)
    noise = np.random.default_rng(0).integers(0, 256, (300, 200, 3), dtype=np.uint8)
    save(Image.fromarray(noise), "noise.png")
    rgba = invoice.resize((333, 444)).convert("RGBA")
    save(rgba, "alpha.png")
    save(invoice.resize((700, 900)).convert("CMYK"), "cmyk.jpg")
    return paths


@pytest.fixture(scope="module")
def engine(tiny_onnx):
    return native.Engine(str(tiny_onnx), threads=1)


def test_images_decode_to_pillows_bytes(pages):
    for path in pages:
        expected = np.asarray(load_image(path, 100_000_000))
        actual = native.load_image(str(path))
        assert actual.shape == expected.shape, path.name
        assert np.array_equal(actual, expected), f"{path.name}: {int((actual != expected).sum())} values differ"


@pytest.mark.parametrize("question", QUESTIONS + ["a", "x-ray self-evident re-entry, 'quoted' \"double\" 1/2"])
def test_header_canvas_equals_pillow(pages, font_path, qa, question):
    font = load_font(font_path, 36)
    for path in pages[:3]:
        page = load_image(path, 100_000_000)
        expected = render_header(page, question, font, qa.config.preprocess)
        actual = native.render_header(np.asarray(page), question, str(font_path))
        assert actual.shape == expected.shape, path.name
        assert np.array_equal(actual, expected), f"{path.name}: {int((actual != expected).sum())} values differ"


def test_wrapping_equals_textwrap():
    import textwrap

    for text in QUESTIONS + ["word " * 40, "x" * 200, "a-very-long-hyphenated-compound-word " * 5, "  tabs\tand  spaces  "]:
        assert native.wrap_question(text, 80) == textwrap.TextWrapper(width=80).wrap(text), text


def test_patches_match_python_within_tolerance(engine, qa, pages):
    for path in pages:
        for question in QUESTIONS[:2]:
            expected = qa.preprocess(Query(path, question))
            actual = engine.preprocess(str(path), question)
            assert actual.shape == expected.shape
            np.testing.assert_array_equal(actual[:, :2], expected[:, :2])  # row/col ids and padding
            np.testing.assert_allclose(actual, expected, atol=PATCH_TOLERANCE, rtol=0, err_msg=path.name)


def test_tokens_equal_inference_py_one_by_one(engine, qa, pages):
    for path, question in zip(pages, QUESTIONS * 2):
        expected = qa.answer(path, question)
        [answer] = engine.answer_batch([str(path)], [question])
        assert list(answer.token_ids) == expected.token_ids, path.name
        assert answer.text == expected.answer


def test_batched_tokens_equal_inference_py(engine, qa, pages):
    queries = [Query(path, question) for path, question in zip(pages, QUESTIONS * 2)]
    expected = qa.answer_batch(queries, max_new_tokens=15)
    answers = engine.answer_batch([str(q.image) for q in queries], [q.question for q in queries], 15)
    assert [list(a.token_ids) for a in answers] == [e.token_ids for e in expected]
    assert {a.batch_size for a in answers} == {len(queries)}


def test_tokens_equal_transformers_generate(engine, hf_model, hf_image_processor, tiny_hf, font_path, pages):
    import torch
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_hf)
    images = [load_image(p, 100_000_000) for p in pages[:4]]
    questions = QUESTIONS[:4]
    inputs = hf_image_processor(images=images, header_text=questions, font_path=str(font_path), return_tensors="pt")
    with torch.inference_mode():
        out = hf_model.generate(**inputs, max_new_tokens=19, do_sample=False, num_beams=1)
    eos = hf_model.generation_config.eos_token_id
    expected = [trim_generated(row[1:].numpy(), eos) for row in out]
    answers = engine.answer_batch([str(p) for p in pages[:4]], questions)
    assert [list(a.token_ids) for a in answers] == expected
    assert [a.text for a in answers] == [tokenizer.decode(ids, skip_special_tokens=True) for ids in expected]


@pytest.fixture(scope="module")
def external_data_folder(tiny_onnx, tmp_path_factory) -> Path:
    """The tiny folder with its weights in *.onnx.data files, as convert.py writes every real model."""
    import onnx

    from pix2struct_onnx.folder import MANIFEST_FILE, describe_files

    folder = tmp_path_factory.mktemp("external") / "model"
    folder.mkdir()
    for item in Path(tiny_onnx).iterdir():
        if item.suffix == ".onnx":
            onnx.save_model(onnx.load(str(item)), str(folder / item.name), save_as_external_data=True,
                            all_tensors_to_one_file=True, location=item.name + ".data", size_threshold=0)
        else:
            (folder / item.name).write_bytes(item.read_bytes())
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    manifest["files"] = describe_files(folder)
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest))
    assert (folder / "decoder.onnx.data").stat().st_size > (folder / "decoder.onnx").stat().st_size
    return folder


def test_external_data_folder_answers_the_same(external_data_folder, qa, pages):
    """Weights mapped from *.onnx.data, whose resident pages the engine drops after compiling."""
    engine = native.Engine(str(external_data_folder), threads=1)
    queries = [Query(path, question) for path, question in zip(pages[:3], QUESTIONS)]
    expected = qa.answer_batch(queries)
    for _ in range(2):  # pages dropped after loading are read back from the file when needed
        answers = engine.answer_batch([str(q.image) for q in queries], [q.question for q in queries])
        assert [list(a.token_ids) for a in answers] == [e.token_ids for e in expected]


def test_concurrent_calls_answer_as_sequential_ones(engine, pages):
    """The binding releases the GIL; the engine runs one batch at a time and preprocesses in parallel."""
    from concurrent.futures import ThreadPoolExecutor

    jobs = [([str(path)], [question]) for path, question in zip(pages, QUESTIONS * 2)]
    sequential = [list(engine.answer_batch(*job)[0].token_ids) for job in jobs]
    with ThreadPoolExecutor(max_workers=4) as pool:
        concurrent = [list(answers[0].token_ids) for answers in pool.map(lambda job: engine.answer_batch(*job), jobs)]
    assert concurrent == sequential


def test_min_and_max_new_tokens(engine, qa, pages):
    [capped] = engine.answer_batch([str(pages[0])], [QUESTIONS[0]], 3)
    assert len(capped.token_ids) == 3
    [forced] = engine.answer_batch([str(pages[0])], [QUESTIONS[0]], 19, 19)
    expected = qa.run_batch([Query(pages[0], QUESTIONS[0])], max_new_tokens=19, min_new_tokens=19)
    assert list(forced.token_ids) == trim_generated(expected.decoded.tokens[0], 1)


def test_detokenizer_equals_tokenizers(tiny_onnx):
    from tokenizers import Tokenizer

    path = tiny_onnx / "tokenizer.json"
    reference = Tokenizer.from_file(str(path))
    ours = native.Detokenizer(str(path))
    rng = np.random.default_rng(1)
    size = reference.get_vocab_size()
    for _ in range(300):
        ids = rng.integers(0, size, rng.integers(0, 25)).tolist()
        assert ours.decode(ids) == reference.decode(ids, skip_special_tokens=True), ids


def test_detokenizer_byte_fallback_equals_tokenizers(tmp_path):
    """A SentencePiece-style file with byte fallback (Replace, ByteFallback, Fuse, Strip), as Llama's."""
    from tokenizers import Tokenizer, decoders, models

    vocab = [("<unk>", 0.0), ("<s>", 0.0), ("</s>", 0.0)] + [(f"<0x{b:02X}>", 0.0) for b in range(256)]
    vocab += [("\u2581the", -1.0), ("\u2581total", -2.0), ("\u2581is", -2.0), ("€", -3.0), ("12", -3.0), ("\u2581", -4.0)]
    tokenizer = Tokenizer(models.Unigram(vocab, unk_id=0, byte_fallback=True))
    tokenizer.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(),
                                           decoders.Strip(" ", 1, 0)])
    tokenizer.add_special_tokens(["<s>", "</s>"])
    path = tmp_path / "tokenizer.json"
    tokenizer.save(str(path))
    ours = native.Detokenizer(str(path))
    rng = np.random.default_rng(2)
    picks = [0, 1, 2, 3 + 0xE2, 3 + 0x82, 3 + 0xAC, 3 + 0x41] + list(range(259, 265))
    for _ in range(300):
        ids = rng.choice(picks, rng.integers(0, 12)).tolist()
        assert ours.decode(ids) == tokenizer.decode(ids, skip_special_tokens=True), ids


def native_cli() -> Path:
    """The pix2struct-answer executable the wheel installs next to this Python."""
    return Path(sysconfig.get_path("scripts")) / "pix2struct-answer"


def test_cli_outputs_equal_inference_py(tiny_onnx, pages):
    args = ["-m", str(tiny_onnx), "-i", str(pages[0]), "-q", QUESTIONS[0], "-q", QUESTIONS[1]]
    python = run_script("inference.py", *args)
    via_python = run_script("inference.py", *args, "--engine", "native", "--threads", "1")
    binary = subprocess.run([str(native_cli()), *args, "--threads", "1"], capture_output=True, text=True, timeout=300)
    assert python.returncode == via_python.returncode == binary.returncode == 0, binary.stderr + via_python.stderr
    assert python.stdout == via_python.stdout == binary.stdout
    python_json = run_script("inference.py", *args, "--json")
    binary_json = subprocess.run([str(native_cli()), *args, "--json"], capture_output=True, text=True, timeout=300)
    for left, right in zip(python_json.stdout.splitlines(), binary_json.stdout.splitlines(), strict=True):
        left, right = json.loads(left), json.loads(right)
        assert set(left) == set(right) and set(left["timings"]) == set(right["timings"])
        assert {k: left[k] for k in left if k != "timings"} == {k: right[k] for k in right if k != "timings"}


def test_paragraph_separator_refused_by_both(qa, engine, pages):
    from pix2struct_onnx.errors import InputError

    question = "first part\u2029second part"
    with pytest.raises(InputError, match="U\\+2029, a paragraph separator") as python_error:
        qa.answer(pages[0], question)
    with pytest.raises(native.InputError) as native_error:
        engine.answer_batch([str(pages[0])], [question])
    assert str(native_error.value) == str(python_error.value)


@pytest.mark.parametrize("case", ["missing image", "corrupt image", "empty question", "huge question",
                                  "bad max tokens", "tiff image", "no glyph", "broken folder"])
def test_cli_bad_input_one_line(tiny_onnx, tmp_path, pages, case):
    image, question, model, extra = str(pages[0]), "What?", str(tiny_onnx), []
    if case == "missing image":
        image = str(tmp_path / "nope.png")
    elif case == "corrupt image":
        (tmp_path / "bad.png").write_bytes(Path(pages[0]).read_bytes()[:300])
        image = str(tmp_path / "bad.png")
    elif case == "empty question":
        question = "   "
    elif case == "huge question":
        question = "why " * 600
    elif case == "bad max tokens":
        extra = ["--max-new-tokens", "5000"]
    elif case == "tiff image":
        Image.open(pages[0]).save(tmp_path / "page.tiff")
        image = str(tmp_path / "page.tiff")
    elif case == "no glyph":
        question = "发票号码是多少?"
    elif case == "broken folder":
        broken = tmp_path / "model"
        broken.mkdir()
        for item in Path(tiny_onnx).iterdir():
            (broken / item.name).write_bytes(item.read_bytes())
        (broken / "decoder.onnx").write_bytes(b"\0" * (broken / "decoder.onnx").stat().st_size)
        model = str(broken)
    result = subprocess.run([str(native_cli()), "-m", model, "-i", image, "-q", question, *extra],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == (1 if case == "broken folder" else 2), result.stderr
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pix2struct-answer: error: "), result.stderr


def test_inference_py_without_the_native_build(tiny_onnx, pages, tmp_path):
    env = blocking_imports(tmp_path, "pix2struct_native")
    args = ["-m", str(tiny_onnx), "-i", str(pages[0]), "-q", "What?"]
    missing = run_script("inference.py", *args, "--engine", "native", env=env)
    assert missing.returncode == 2 and "pip install ./cpp" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1
    plain = run_script("inference.py", *args, env=env)
    assert plain.returncode == 0 and plain.stdout.strip()


@pytest.fixture(scope="module")
def cpp_build() -> Path:
    """cpp/ configured and built with its GoogleTest tests and parity tools (incremental in cpp/build/dev)."""
    build = ROOT / "cpp" / "build" / "dev"
    for step in [["cmake", "-S", str(ROOT / "cpp"), "-B", str(build), "-DP2S_BUILD_TESTS=ON",
                  f"-DPython3_EXECUTABLE={sys.executable}"],
                 ["cmake", "--build", str(build), "-j", str(os.cpu_count() or 2)]]:
        result = subprocess.run(step, capture_output=True, text=True, timeout=1800)
        assert result.returncode == 0, f"{' '.join(step)}\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return build


def test_cpp_unit_tests_pass(cpp_build, tiny_onnx, font_path, pages):
    env = dict(os.environ, P2S_TEST_FONT=str(font_path), P2S_TEST_MODEL=str(tiny_onnx), P2S_TEST_IMAGE=str(pages[0]))
    result = subprocess.run(["ctest", "--test-dir", str(cpp_build), "--output-on-failure"], capture_output=True,
                            text=True, env=env, timeout=1800)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "100% tests passed" in result.stdout and "Skipped" not in result.stdout, result.stdout[-2000:]


def test_image_decoding_sweep_equals_pillow(cpp_build):
    """427 generated PNG/JPEG files (bit depths, colour types, interlacing, EXIF, damage): same bytes or both fail."""
    result = subprocess.run([sys.executable, str(ROOT / "cpp" / "tools" / "check_image_io.py"), "--binary",
                             str(cpp_build / "check_image_io")], capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_header_sweep_equals_pillow(cpp_build):
    """Headers for 7 page shapes x 11 questions per installed font, wrapping and resize sweeps: identical bytes."""
    result = subprocess.run([sys.executable, str(ROOT / "cpp" / "tools" / "check_header.py"),
                             str(cpp_build / "check_header")], capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0 and "ALL EQUAL" in result.stdout, result.stdout[-4000:] + result.stderr[-2000:]
