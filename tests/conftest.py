"""Fixtures: a tiny random Pix2Struct-DocVQA in Hugging Face format and its converted ONNX folder.

Nothing is downloaded. The font is the TrueType font embedded in Pillow (ImageFont.load_default),
written to a file so both transformers' processor and this package draw headers with it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Keep every test offline, even on a machine with network access.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def font_path(tmp_path_factory) -> Path:
    from PIL import ImageFont

    path = tmp_path_factory.mktemp("font") / "header.ttf"
    path.write_bytes(ImageFont.load_default(size=36).font_bytes)
    return path


@pytest.fixture(scope="session")
def tiny_hf(tmp_path_factory) -> Path:
    from pix2struct_onnx.random_model import build_random_model

    return build_random_model(tmp_path_factory.mktemp("hf") / "tiny", size="tiny")


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory, tiny_hf, font_path) -> Path:
    from pix2struct_onnx.convert_cli import convert

    output = tmp_path_factory.mktemp("onnx") / "model"
    convert(str(tiny_hf), output, font=str(font_path))
    return output


@pytest.fixture(scope="session")
def hf_model(tiny_hf):
    from transformers import Pix2StructForConditionalGeneration

    return Pix2StructForConditionalGeneration.from_pretrained(tiny_hf).eval()


@pytest.fixture(scope="session")
def hf_image_processor(tiny_hf):
    from transformers import Pix2StructImageProcessor

    return Pix2StructImageProcessor.from_pretrained(tiny_hf)


@pytest.fixture(scope="session")
def qa(tiny_onnx):
    from pix2struct_onnx.pipeline import DocumentQA

    return DocumentQA(tiny_onnx, threads=1)


@pytest.fixture(scope="session")
def sample_image(tmp_path_factory, font_path) -> Path:
    from pix2struct_onnx.sample import draw_sample_document

    path = tmp_path_factory.mktemp("img") / "invoice.png"
    draw_sample_document(font_path).save(path)
    return path


def blocking_imports(folder: Path, *modules: str) -> dict:
    """Environment for run_script in which importing these top-level modules fails, as when absent."""
    (folder / "sitecustomize.py").write_text(
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name.split('.')[0] in {modules!r}:\n"
        "            raise ImportError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, Block())\n")
    return {"PYTHONPATH": str(folder)}


def run_script(script: str, *args: str, env: dict | None = None, cwd: Path | None = None):
    """Run convert.py or inference.py as a user would; returns the CompletedProcess."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([sys.executable, str(ROOT / script), *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd or ROOT, timeout=600)
