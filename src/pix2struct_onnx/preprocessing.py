"""Image -> flattened patches, the same arrays as transformers' Pix2StructImageProcessor (VQA mode).

Reference: transformers/models/pix2struct/image_processing_pix2struct.py. Steps, in its order:
open (EXIF orientation, RGB) -> render_header (question drawn above the page) -> per-image
standardisation -> resize to rows x cols patches (antialiased bilinear) -> patches with row/col ids.

Written with numpy and Pillow only, so inference needs no torch. The one step transformers does in
torch, the antialiased bilinear resize, is reimplemented in float32 (see _antialias_weights).
"""

from __future__ import annotations

import io
import math
import textwrap
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps, UnidentifiedImageError

from .errors import InputError
from .folder import PreprocessConfig

# Questions longer than this are refused: their header would dwarf any page.
MAX_QUESTION_CHARS = 2000


@dataclass
class Patches:
    """Encoder input for a batch: flattened_patches (B, P, 2 + ph*pw*3) and attention_mask (B, P)."""

    flattened_patches: np.ndarray
    attention_mask: np.ndarray


def load_image(path: str | Path, max_pixels: int) -> Image.Image:
    """Open an image like transformers' load_image (EXIF orientation, RGB), with clear errors."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"image {path} does not exist; check the path")
    if not path.is_file():
        raise InputError(f"image {path} is not a file; pass an image file (PNG, JPEG, ...)")
    previous_limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = max_pixels or None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                if image.width == 0 or image.height == 0:
                    raise InputError(f"image {path} has no pixels ({image.width}x{image.height})")
                if getattr(image, "n_frames", 1) > 1:
                    image.seek(0)  # animated GIF/PNG/WebP: the first frame is the page
                image.load()
                image = ImageOps.exif_transpose(image)
                rgb = image.convert("RGB")
    except InputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputError(f"image {path} has more than {max_pixels:,} pixels, the limit against "
                         "decompression bombs; downscale it first") from None
    except UnidentifiedImageError:
        raise InputError(f"{path} is not an image Pillow can read; pass a PNG, JPEG, TIFF, BMP, GIF or WebP file") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"image {path} is truncated or corrupt ({exc}); re-export or re-download it") from None
    finally:
        Image.MAX_IMAGE_PIXELS = previous_limit
    return rgb


def load_font(path: str | Path, size: int) -> ImageFont.FreeTypeFont:
    """Open the header font as transformers does (UTF-8 encoding)."""
    try:
        return ImageFont.truetype(str(path), encoding="UTF-8", size=size)
    except OSError as exc:
        raise InputError(f"font {path} cannot be opened ({exc}); pass a TrueType font file") from None


def wrap_question(text: str, wrap_width: int) -> list[str]:
    return textwrap.TextWrapper(width=wrap_width).wrap(text=text)


# Paragraph separators that textwrap keeps make Pillow's raqm layout fail (RuntimeError).
PARAGRAPH_SEPARATORS = "\x1c\x1d\x1e\x85\u2029"


def render_text(text: str, font: ImageFont.FreeTypeFont, wrap_width: int, padding: int) -> Image.Image:
    """Draw text black on white, wrapped at wrap_width characters, padded on every side."""
    wrapped = "\n".join(wrap_question(text, wrap_width))
    separator = next((c for c in wrapped if c in PARAGRAPH_SEPARATORS), None)
    if separator is not None:
        raise InputError(f"the question contains U+{ord(separator):04X}, a paragraph separator the header cannot "
                         "be drawn with; remove it")
    _, _, text_width, text_height = ImageDraw.Draw(Image.new("RGB", (1, 1), "white")).textbbox(
        (0, 0), wrapped, font)
    image = Image.new("RGB", (text_width + 2 * padding, text_height + 2 * padding), "white")
    ImageDraw.Draw(image).text(xy=(padding, padding), text=wrapped, fill="black", font=font)
    return image


def render_header(image: Image.Image, question: str, font: ImageFont.FreeTypeFont,
                  config: PreprocessConfig) -> np.ndarray:
    """Stack the rendered question above the image at a common width; returns uint8 (H, W, 3)."""
    header = render_text(question, font, config.header_wrap_width, config.header_padding)
    width = max(header.width, image.width)
    height = int(image.height * (width / image.width))
    header_height = int(header.height * (width / header.width))
    # A one-line header is what every question gets (short ones are scaled up to the page width);
    # a wrapped question whose header outgrows the page leaves the page too few patches.
    if header_height > height and len(wrap_question(question, config.header_wrap_width)) > 1:
        raise InputError(f"the question is so long that its header ({header_height} px) would be taller than "
                         f"the page ({height} px) at the same width; shorten the question")
    canvas = Image.new("RGB", (width, height + header_height), "white")
    # Pillow's default filter, as transformers calls resize without one.
    canvas.paste(header.resize((width, header_height)), (0, 0))
    canvas.paste(image.resize((width, height)), (0, header_height))
    return np.asarray(canvas)


def standardize(pixels: np.ndarray) -> np.ndarray:
    """Per-image standardisation: one mean and one std over all values, std floored at 1/sqrt(N)."""
    pixels = pixels.astype(np.float32)
    mean = np.mean(pixels)
    std = max(np.std(pixels), 1.0 / math.sqrt(np.prod(pixels.shape)))
    return (pixels - np.float32(mean)) / np.float32(std)


def patch_grid(height: int, width: int, max_patches: int, patch_h: int, patch_w: int) -> tuple[int, int]:
    """Largest rows x cols grid that keeps the aspect ratio and fits max_patches."""
    scale = math.sqrt(max_patches * (patch_h / height) * (patch_w / width))
    rows = max(min(math.floor(scale * height / patch_h), max_patches), 1)
    cols = max(min(math.floor(scale * width / patch_w), max_patches), 1)
    return rows, cols


def _antialias_weights(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Tap indices and weights (out_size, K) of torch's antialiased bilinear filter along one axis.

    Written by hand because no numpy/Pillow routine reproduces torch to float precision: Pillow
    computes the same triangle filter in double precision, and its window edges (xmin, xmax) then
    differ from torch's float32 ones by a tap, which moves some outputs by ~1e-4. Everything here
    is float32 in torch's order of operations (aten/src/ATen/native/cpu/UpSampleKernel.cpp).
    """
    f32 = np.float32
    scale = f32(in_size) / f32(out_size)
    support = scale if scale >= 1.0 else f32(1.0)
    inverse = f32(1.0) / scale if scale >= 1.0 else f32(1.0)
    center = scale * (np.arange(out_size, dtype=f32) + f32(0.5))
    xmin = np.maximum(np.trunc(center - support + f32(0.5)), 0).astype(np.int64)
    xmax = np.minimum(np.trunc(center + support + f32(0.5)), in_size).astype(np.int64)
    taps = int((xmax - xmin).max())
    index = xmin[:, None] + np.arange(taps)[None, :]  # (out, K)
    valid = index < xmax[:, None]
    distance = (index.astype(f32) - center[:, None] + f32(0.5)) * inverse
    weights = np.where(valid, np.maximum(f32(0.0), f32(1.0) - np.abs(distance)), f32(0.0)).astype(f32)
    weights /= weights.sum(axis=1, keepdims=True, dtype=f32)
    return np.where(valid, index, xmin[:, None]), weights


def resize_bilinear_antialias(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """torch.nn.functional.interpolate(bilinear, align_corners=False, antialias=True) of (H, W, C) float32."""
    image = np.ascontiguousarray(image, dtype=np.float32)
    rows, _, channels = image.shape
    # Width first, as torch does; taps accumulate in order into preallocated buffers.
    index, weights = _antialias_weights(image.shape[1], width)
    wide = np.zeros((rows, width, channels), dtype=np.float32)
    tap = np.empty_like(wide)
    for k in range(index.shape[1]):
        np.take(image, index[:, k], axis=1, out=tap)
        tap *= weights[None, :, k, None]
        wide += tap
    index, weights = _antialias_weights(rows, height)
    out = np.zeros((height, width, channels), dtype=np.float32)
    tap = np.empty_like(out)
    for k in range(index.shape[1]):
        np.take(wide, index[:, k], axis=0, out=tap)
        tap *= weights[:, k, None, None]
        out += tap
    return out


def extract_patches(image: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    """Resize to a patch grid and flatten: (max_patches, 2 + ph*pw*C), row/col ids 1-based, zero padded."""
    ph, pw = config.patch_height, config.patch_width
    rows, cols = patch_grid(image.shape[0], image.shape[1], config.max_patches, ph, pw)
    resized = resize_bilinear_antialias(image, rows * ph, cols * pw)  # (rows*ph, cols*pw, C)
    channels = resized.shape[2]
    # (rows, ph, cols, pw, C) -> (rows, cols, ph, pw, C): each patch flattened in (ph, pw, C) order
    patches = resized.reshape(rows, ph, cols, pw, channels).transpose(0, 2, 1, 3, 4)
    patches = patches.reshape(rows * cols, ph * pw * channels)
    row_ids, col_ids = np.meshgrid(np.arange(1, rows + 1), np.arange(1, cols + 1), indexing="ij")
    result = np.zeros((config.max_patches, 2 + ph * pw * channels), dtype=np.float32)
    result[: rows * cols, 0] = row_ids.reshape(-1)
    result[: rows * cols, 1] = col_ids.reshape(-1)
    result[: rows * cols, 2:] = patches
    return result


def check_question(question: str) -> str:
    if not isinstance(question, str) or not question.strip():
        raise InputError("the question is empty; pass a question with -q, e.g. -q \"What is the date?\"")
    if len(question) > MAX_QUESTION_CHARS:
        raise InputError(f"the question has {len(question)} characters, more than the limit of "
                         f"{MAX_QUESTION_CHARS}; shorten it")
    return question


def check_glyphs(question: str, font: ImageFont.FreeTypeFont) -> None:
    """Refuse characters the header font cannot draw (they would become empty boxes)."""

    def draw(text: str) -> bytes:
        canvas = Image.new("L", (2 * font.size, 2 * font.size), 0)
        ImageDraw.Draw(canvas).text((0, 0), text, fill=255, font=font)
        return canvas.tobytes()

    missing_glyph = draw("\U0010fffd")  # a private-use code point: no font maps it
    missing = [c for c in sorted(set(question)) if not c.isspace() and draw(c) == missing_glyph]
    if missing:
        shown = ", ".join(f"'{c}' (U+{ord(c):04X})" for c in missing[:5])
        raise InputError(f"the header font has no glyph for {shown}; the model reads questions drawn "
                         "with this font, so rephrase the question without these characters")


def preprocess_image(image: Image.Image, question: str, font: ImageFont.FreeTypeFont,
                     config: PreprocessConfig) -> np.ndarray:
    """One RGB image and its question -> flattened patches (max_patches, 2 + ph*pw*3)."""
    check_question(question)
    check_glyphs(question, font)
    pixels = render_header(image, question, font, config) if config.is_vqa else np.asarray(image)
    return extract_patches(standardize(pixels), config)


def stack_patches(items: list[np.ndarray]) -> Patches:
    """Batch per-image patch arrays; the mask marks real patches (any non-zero feature)."""
    flattened = np.stack(items).astype(np.float32, copy=False)
    mask = (flattened.sum(axis=-1) != 0).astype(np.float32)
    return Patches(flattened_patches=flattened, attention_mask=mask)


def font_bytes_ok(data: bytes) -> bool:
    """True if the bytes are a font Pillow can open (used to check a downloaded font)."""
    try:
        ImageFont.truetype(io.BytesIO(data), size=12)
        return True
    except OSError:
        return False
