"""Preprocessing against transformers' Pix2StructImageProcessor (tolerance 1e-5 absolute).

The reference is transformers.image_utils.load_image (EXIF orientation, RGB) followed by the
image processor in VQA mode with the same font. Values after standardisation span about -3..+3.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from pix2struct_onnx.errors import InputError
from pix2struct_onnx.folder import PreprocessConfig
from pix2struct_onnx.preprocessing import (
    load_font, load_image, patch_grid, preprocess_image, resize_bilinear_antialias)

TOLERANCE = 1e-5


def document(width: int, height: int, mode: str = "RGB", seed: int = 0) -> Image.Image:
    """A page with text-like strokes and some colour, converted to the requested mode."""
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (width, height), (250, 248, 240))
    draw = ImageDraw.Draw(image)
    for _ in range(max(3, height // 20)):
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        colour = tuple(int(c) for c in rng.integers(0, 200, 3))
        draw.rectangle((x, y, x + int(rng.integers(5, 80)), y + int(rng.integers(2, 12))), fill=colour)
    if mode == "RGBA":
        image = image.convert("RGBA")
        image.putalpha(Image.linear_gradient("L").resize(image.size))
        return image
    if mode == "I;16":
        grey = np.asarray(image.convert("L"), dtype=np.uint16) * 257
        return Image.fromarray(grey)  # uint16 -> mode I;16
    return image.convert(mode)


def reference_patches(processor, path, question, font_path, max_patches):
    from transformers.image_utils import load_image as hf_load_image

    image = hf_load_image(str(path))
    out = processor(images=image, header_text=question, font_path=str(font_path), max_patches=max_patches,
                    return_tensors="np")
    return out["flattened_patches"][0], out["attention_mask"][0]


@pytest.mark.parametrize("size,mode", [
    ((850, 1100), "RGB"),      # letter portrait
    ((1700, 2200), "RGB"),     # 200 dpi: downscale by a non-integer ratio
    ((1240, 300), "RGB"),      # wide strip
    ((120, 900), "RGB"),       # tall, narrow receipt
    ((64, 48), "RGB"),         # tiny: upscaled
    ((600, 800), "L"),         # greyscale
    ((600, 800), "RGBA"),      # alpha
    ((600, 800), "P"),         # palette
    ((600, 800), "CMYK"),      # saved as JPEG below
    ((600, 800), "I;16"),      # 16-bit greyscale PNG
    ((600, 800), "1"),         # bilevel
])
def test_patches_match_transformers(tmp_path, hf_image_processor, font_path, size, mode):
    path = tmp_path / ("page.jpg" if mode == "CMYK" else "page.png")
    document(*size, mode=mode).save(path)
    config = PreprocessConfig(max_patches=hf_image_processor.max_patches)
    ours = preprocess_image(load_image(path, config.max_image_pixels), "What is the total amount?",
                            load_font(font_path, config.text_size), config)
    ref, ref_mask = reference_patches(hf_image_processor, path, "What is the total amount?", font_path,
                                      config.max_patches)
    assert ours.shape == ref.shape
    np.testing.assert_array_equal(ours[:, :2], ref[:, :2])  # row/col ids and padding exactly
    assert np.abs(ours - ref).max() <= TOLERANCE
    np.testing.assert_array_equal((ours.sum(-1) != 0).astype(np.float32), ref_mask)


@pytest.mark.parametrize("question", [
    "Total?",                                                   # one short line: header scaled up a lot
    "What is the name of the company that issued this invoice and where is its head office located "
    "according to the letterhead printed at the top of the page?",  # wraps onto two lines
])
def test_header_matches_transformers_at_full_patch_budget(tmp_path, hf_image_processor, font_path, question):
    path = tmp_path / "page.png"
    document(850, 1100).save(path)
    config = PreprocessConfig(max_patches=2048)
    ours = preprocess_image(load_image(path, config.max_image_pixels), question,
                            load_font(font_path, config.text_size), config)
    ref, _ = reference_patches(hf_image_processor, path, question, font_path, 2048)
    assert np.abs(ours - ref).max() <= TOLERANCE


def test_exif_orientation_is_applied_like_transformers(tmp_path, hf_image_processor, font_path):
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when displayed
    document(400, 300).save(path, exif=exif)
    image = load_image(path, 0)
    assert image.size == (300, 400)
    config = PreprocessConfig(max_patches=hf_image_processor.max_patches)
    ours = preprocess_image(image, "Date?", load_font(font_path, 36), config)
    ref, _ = reference_patches(hf_image_processor, path, "Date?", font_path, config.max_patches)
    assert np.abs(ours - ref).max() <= TOLERANCE


@pytest.mark.parametrize("shape", [(1100, 850, 720, 560), (300, 400, 480, 640), (37, 2000, 16, 160)])
def test_resize_matches_torch_interpolate(shape):
    import torch

    h, w, oh, ow = shape
    x = np.random.default_rng(1).standard_normal((h, w, 3)).astype(np.float32)
    ref = torch.nn.functional.interpolate(torch.from_numpy(x).permute(2, 0, 1)[None], size=(oh, ow),
                                          mode="bilinear", align_corners=False, antialias=True)
    ours = resize_bilinear_antialias(x, oh, ow)
    assert np.abs(ours - ref[0].permute(1, 2, 0).numpy()).max() <= 2e-6


def test_patch_grid_respects_budget():
    for height, width in [(1100, 850), (10, 5000), (5000, 10), (16, 16), (1, 1)]:
        rows, cols = patch_grid(height, width, 2048, 16, 16)
        assert 1 <= rows * cols <= 2048


def test_unsupported_characters_are_refused(font_path):
    config = PreprocessConfig(max_patches=64)
    image = document(200, 300)
    with pytest.raises(InputError, match="no glyph"):
        preprocess_image(image, "\u8acb\u554f\u7e3d\u984d\u662f\u591a\u5c11", load_font(font_path, 36), config)


def test_long_question_taller_than_page_is_refused(font_path):
    config = PreprocessConfig(max_patches=64)
    with pytest.raises(InputError, match="taller than"):
        preprocess_image(document(800, 60), "What is written here? " * 20, load_font(font_path, 36), config)
