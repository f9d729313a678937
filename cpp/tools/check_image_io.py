"""Parity check of the native image reader (cpp/src/image_io.cpp) against preprocessing.load_image.

Generates a corpus of PNG and JPEG files (and damaged and unsupported ones) with Pillow, numpy and a
small PNG writer of its own (for bit depths, interlacing, filters and chunk layouts Pillow does not
write), decodes each with preprocessing.load_image (Pillow) and with the check_image_io program, and
prints one line per case: equal, or how many values differ and by how much, or both error messages.

    g++ -std=c++17 -O2 -Icpp/include -Icpp/src cpp/src/image_io.cpp cpp/tools/check_image_io.cpp \
        -o /tmp/check_image_io -ljpeg -lz
    .venv/bin/python cpp/tools/check_image_io.py --binary /tmp/check_image_io

Exit status 0 when every supported case is bit-identical and every error case fails on both sides.
"""

from __future__ import annotations

import argparse
import io
import struct
import subprocess
import sys
import tempfile
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))
from pix2struct_onnx.preprocessing import load_image  # noqa: E402

DEFAULT_MAX_PIXELS = 100_000_000
RNG = np.random.default_rng(1234)


# --------------------------------------------------------------------------------------------
# Content and file builders


def noise(h: int, w: int, c: int, high: int = 256) -> np.ndarray:
    return RNG.integers(0, high, size=(h, w, c), dtype=np.int64)


def smooth(h: int, w: int, c: int) -> np.ndarray:
    """A gradient with a little noise: what JPEG usually holds."""
    y, x = np.mgrid[0:h, 0:w]
    planes = [(x * 255 // max(w - 1, 1) + k * 40 + y * 3) % 256 for k in range(c)]
    return (np.stack(planes, -1) + RNG.integers(0, 8, size=(h, w, c))).clip(0, 255)


def pil_bytes(image: Image.Image, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **options)
    return buf.getvalue()


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def pack_row(values: np.ndarray, bit_depth: int) -> bytes:
    flat = values.reshape(-1)
    if bit_depth == 16:
        return flat.astype(">u2").tobytes()
    if bit_depth == 8:
        return flat.astype(np.uint8).tobytes()
    bits = np.unpackbits(flat.astype(np.uint8)[:, None], axis=1)[:, 8 - bit_depth:]
    return np.packbits(bits.reshape(-1)).tobytes()


def filter_row(raw: bytes, prev: bytes, bpp: int, kind: int) -> bytes:
    x = np.frombuffer(raw, np.uint8).astype(np.int64)
    b = np.frombuffer(prev, np.uint8).astype(np.int64)
    a = np.concatenate([np.zeros(bpp, np.int64), x[:-bpp]])[: len(x)]
    c = np.concatenate([np.zeros(bpp, np.int64), b[:-bpp]])[: len(x)]
    if kind == 0:
        out = x
    elif kind == 1:
        out = x - a
    elif kind == 2:
        out = x - b
    elif kind == 3:
        out = x - (a + b) // 2
    else:
        pa, pb, pc = np.abs(b - c), np.abs(a - c), np.abs(a + b - 2 * c)
        out = x - np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
    return bytes([kind]) + (out % 256).astype(np.uint8).tobytes()


def image_stream(samples: np.ndarray, bit_depth: int, interlace: bool, filters: str) -> bytes:
    """The uncompressed, filtered image data of a PNG (Adam7 passes when interlaced)."""
    channels = samples.shape[2]
    bpp = max(1, channels * bit_depth // 8)
    passes = ADAM7 if interlace else [(0, 0, 1, 1)]
    out = bytearray()
    for x0, y0, dx, dy in passes:
        sub = samples[y0::dy, x0::dx]
        if sub.shape[0] == 0 or sub.shape[1] == 0:
            continue
        prev = bytes(len(pack_row(sub[0], bit_depth)))
        for row in sub:
            raw = pack_row(row, bit_depth)
            kind = int(RNG.integers(0, 5)) if filters == "random" else int(filters)
            out += filter_row(raw, prev, bpp, kind)
            prev = raw
    return bytes(out)


def png_file(samples: np.ndarray, bit_depth: int, colour_type: int, *, interlace: bool = False,
             filters: str = "random", palette: bytes | None = None, before_idat: bytes = b"",
             after_idat: bytes = b"", idat_sizes: list[int] | None = None, stream: bytes | None = None,
             ihdr: bytes | None = None) -> bytes:
    h, w = samples.shape[:2]
    head = ihdr if ihdr is not None else struct.pack(">IIBBBBB", w, h, bit_depth, colour_type, 0, 0, int(interlace))
    data = stream if stream is not None else zlib.compress(image_stream(samples, bit_depth, interlace, filters), 9)
    pieces, at = [], 0
    for size in idat_sizes or []:
        pieces.append(data[at:at + size])
        at += size
    pieces.append(data[at:])
    out = PNG_SIGNATURE + chunk(b"IHDR", head)
    if palette is not None:
        out += chunk(b"PLTE", palette)
    out += before_idat + b"".join(chunk(b"IDAT", p) for p in pieces) + after_idat + chunk(b"IEND", b"")
    return out


def exif_block(orientation: int, big_endian: bool = False, extra_first: bool = False) -> bytes:
    """A TIFF structure with IFD0 holding Orientation (SHORT), optionally after a Make string."""
    e = ">" if big_endian else "<"
    entries = []
    if extra_first:
        entries.append(struct.pack(e + "HHII", 0x010F, 2, 12, 0))  # Make, data after the IFD
    entries.append(struct.pack(e + "HHIHH", 0x0112, 3, 1, orientation, 0))
    ifd_size = 2 + 12 * len(entries) + 4
    if extra_first:
        entries[0] = struct.pack(e + "HHII", 0x010F, 2, 12, 8 + ifd_size)
    head = (b"MM\x00\x2a" if big_endian else b"II\x2a\x00") + struct.pack(e + "I", 8)
    body = struct.pack(e + "H", len(entries)) + b"".join(entries) + struct.pack(e + "I", 0)
    return head + body + (b"Test camera\x00" if extra_first else b"")


def xmp_packet(orientation: int) -> str:
    return ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
            f'<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="{orientation}"/>'
            "</rdf:RDF></x:xmpmeta>")


def raw_profile_exif(data: bytes) -> str:
    """ImageMagick's "Raw profile type exif" text: newline, name, length, hex in 72-column lines."""
    hexed = data.hex()
    lines = "\n".join(hexed[i:i + 72] for i in range(0, len(hexed), 72))
    return f"\nexif\n{len(data):8}\n{lines}\n"


def insert_jpeg_segment(jpeg: bytes, marker: int, payload: bytes) -> bytes:
    """Puts an APPn segment right after SOI."""
    return jpeg[:2] + struct.pack(">HH", marker, len(payload) + 2) + payload + jpeg[2:]


def jfif_with_dpi(jpeg: bytes) -> bytes:
    """Sets the JFIF APP0 density unit to dots per inch (so Pillow's _open records a dpi)."""
    at = jpeg.index(b"JFIF\x00")
    out = bytearray(jpeg)
    out[at + 7] = 1
    out[at + 8:at + 12] = struct.pack(">HH", 300, 300)
    return bytes(out)


def apng(frames: list[Image.Image], default_image: bool) -> bytes:
    buf = io.BytesIO()
    if default_image:
        frames[0].save(buf, "PNG", save_all=True, append_images=frames[1:], default_image=True)
    else:
        frames[0].save(buf, "PNG", save_all=True, append_images=frames[1:])
    return buf.getvalue()


# --------------------------------------------------------------------------------------------
# The corpus


@dataclass
class Case:
    name: str
    data: bytes | None  # None: the path is made by `setup`
    max_pixels: int = DEFAULT_MAX_PIXELS
    unsupported: bool = False  # a format only Pillow reads: the native side must refuse it
    setup: str = ""  # "missing" | "directory"


def png_cases() -> list[Case]:
    cases = []
    sizes = [(1, 1), (7, 3), (17, 1000), (9, 13)]  # (h, w)
    # Pillow-written PNGs of every mode it saves.
    for h, w in sizes:
        rgb = noise(h, w, 3).astype(np.uint8)
        cases += [
            Case(f"png pillow RGB {w}x{h}", pil_bytes(Image.fromarray(rgb), "PNG")),
            Case(f"png pillow RGBA {w}x{h}", pil_bytes(Image.fromarray(noise(h, w, 4).astype(np.uint8)), "PNG")),
            Case(f"png pillow L {w}x{h}", pil_bytes(Image.fromarray(rgb[..., 0]), "PNG")),
            Case(f"png pillow LA {w}x{h}", pil_bytes(Image.fromarray(noise(h, w, 2).astype(np.uint8), "LA"), "PNG")),
            Case(f"png pillow 1 {w}x{h}", pil_bytes(Image.fromarray(rgb[..., 0] > 127), "PNG")),
            Case(f"png pillow I;16 {w}x{h}",
                 pil_bytes(Image.fromarray(noise(h, w, 1, 1024)[..., 0].astype(np.uint16)), "PNG")),
            Case(f"png pillow P {w}x{h}", pil_bytes(Image.fromarray(rgb).quantize(64), "PNG")),
        ]
    pal = Image.fromarray(noise(9, 13, 3).astype(np.uint8)).quantize(16)
    cases.append(Case("png pillow P 4-bit", pil_bytes(pal, "PNG", bits=4)))
    tp = pal.copy()
    tp.info["transparency"] = 3
    cases.append(Case("png pillow P tRNS index", pil_bytes(tp, "PNG")))
    tp.info["transparency"] = bytes(RNG.integers(0, 256, 16, dtype=np.uint8))
    cases.append(Case("png pillow P tRNS alphas", pil_bytes(tp, "PNG")))
    grey_t = Image.fromarray(noise(5, 6, 1)[..., 0].astype(np.uint8))
    cases.append(Case("png pillow L tRNS", pil_bytes(grey_t, "PNG", transparency=7)))
    cases.append(Case("png pillow RGB tRNS",
                      pil_bytes(Image.fromarray(noise(5, 6, 3).astype(np.uint8)), "PNG", transparency=(1, 2, 3))))
    big = noise(700, 1100, 3).astype(np.uint8)  # ~2.3 MB of IDAT: many 64 KiB decoder blocks
    cases.append(Case("png pillow RGB noise 1100x700", pil_bytes(Image.fromarray(big), "PNG")))
    cases.append(Case("png pillow RGB gradient 1000x17",
                      pil_bytes(Image.fromarray(smooth(17, 1000, 3).astype(np.uint8)), "PNG", optimize=True)))

    # Every bit depth and colour type, plain and Adam7, random filters, odd sizes.
    combos = [(1, 0), (2, 0), (4, 0), (8, 0), (16, 0), (8, 2), (16, 2), (1, 3), (2, 3), (4, 3), (8, 3),
              (8, 4), (16, 4), (8, 6), (16, 6)]
    for bit_depth, colour_type in combos:
        for h, w in [(1, 1), (7, 3), (13, 37), (2, 9)]:
            for interlace in (False, True):
                high = 1 << bit_depth
                samples = noise(h, w, CHANNELS[colour_type], high)
                palette = None
                if colour_type == 3:
                    entries = min(high, 1 << bit_depth) if (h * w) % 2 else max(1, high // 2 + 1)
                    palette = bytes(RNG.integers(0, 256, 3 * entries, dtype=np.uint8))
                name = f"png {bit_depth}-bit type {colour_type} {w}x{h}{' adam7' if interlace else ''}"
                cases.append(Case(name, png_file(samples, bit_depth, colour_type, interlace=interlace,
                                                 palette=palette)))
    # Palette subtleties: short palette (indices past it are black), tRNS, no PLTE at all.
    samples = noise(6, 11, 1)
    cases.append(Case("png P short palette", png_file(samples, 8, 3, palette=bytes(range(30)))))
    cases.append(Case("png P palette + tRNS", png_file(samples, 8, 3, palette=bytes(range(256)) * 3,
                                                       before_idat=chunk(b"tRNS", bytes(range(0, 256, 3))))))
    cases.append(Case("png P no PLTE", png_file(samples, 8, 3)))
    cases.append(Case("png P 257 palette entries", png_file(samples, 8, 3, palette=bytes(771))))
    # 16-bit grey around the 255 clip; 16-bit grey with tRNS; RGB16 tRNS.
    cases.append(Case("png 16-bit grey 0..65535 ramp",
                      png_file(np.arange(0, 65536, 97).reshape(1, -1, 1)[:, :600], 16, 0)))
    cases.append(Case("png 16-bit grey tRNS", png_file(noise(4, 5, 1, 65536), 16, 0,
                                                       before_idat=chunk(b"tRNS", b"\x01\x00"))))
    cases.append(Case("png 16-bit RGB tRNS", png_file(noise(4, 5, 3, 65536), 16, 2,
                                                      before_idat=chunk(b"tRNS", b"\x00\x01" * 3))))
    # Colour-management chunks do not change the pixels.
    icc = zlib.compress(b"not really a profile" * 10)
    cm = (chunk(b"gAMA", struct.pack(">I", 45455)) + chunk(b"cHRM", bytes(32)) + chunk(b"sRGB", b"\x00")
          + chunk(b"iCCP", b"icc\x00\x00" + icc) + chunk(b"sBIT", b"\x05\x06\x05") + chunk(b"pHYs", bytes(9)))
    cases.append(Case("png gAMA cHRM sRGB iCCP sBIT pHYs", png_file(noise(8, 8, 3), 8, 2, before_idat=cm)))
    cases.append(Case("png gAMA 0.1 RGB16", png_file(noise(8, 8, 3, 65536), 16, 2,
                                                     before_idat=chunk(b"gAMA", struct.pack(">I", 10000)))))
    # Chunk layouts: many small IDATs, empty IDATs, text after IDAT, unknown chunks.
    samples = noise(30, 40, 3)
    stream = zlib.compress(image_stream(samples, 8, False, "random"))
    cases.append(Case("png 1-byte IDAT chunks", png_file(samples, 8, 2, stream=stream, idat_sizes=[1] * 200)))
    cases.append(Case("png empty IDAT first", png_file(samples, 8, 2, stream=stream, idat_sizes=[0, 0, 10])))
    cases.append(Case("png text chunks before and after IDAT",
                      png_file(samples, 8, 2, stream=stream, before_idat=chunk(b"tEXt", b"Title\x00x"),
                               after_idat=chunk(b"zTXt", b"Comment\x00\x00" + zlib.compress(b"hello"))
                               + chunk(b"iTXt", b"Note\x00\x00\x00en\x00\x00text"))))
    cases.append(Case("png private chunks", png_file(samples, 8, 2, stream=stream,
                                                     before_idat=chunk(b"prVt", b"abc") + chunk(b"ABCD", b"x"),
                                                     after_idat=chunk(b"zzZz", bytes(100)))))
    cases.append(Case("png stream with extra data", png_file(samples, 8, 2, stream=stream + b"trailing junk")))
    cases.append(Case("png stream ending on a row boundary early",
                      png_file(samples, 8, 2, stream=zlib.compress(image_stream(samples[:10], 8, False, "0"))),
                      ))
    cases.append(Case("png no zlib checksum", png_file(samples, 8, 2, stream=stream[:-4])))
    bad_adler = stream[:-1] + bytes([stream[-1] ^ 1])
    cases.append(Case("png bad zlib checksum", png_file(samples, 8, 2, stream=bad_adler)))
    cases.append(Case("png bad zlib checksum in its own IDAT",
                      png_file(samples, 8, 2, stream=bad_adler, idat_sizes=[len(bad_adler) - 4])))
    good = png_file(samples, 8, 2, stream=stream)
    idat_crc = good.index(b"IDAT") + 4 + len(stream)
    cases.append(Case("png bad IDAT CRC (Pillow does not check it)",
                      good[:idat_crc] + bytes([good[idat_crc] ^ 0xFF]) + good[idat_crc + 1:]))
    # EXIF / XMP orientation on PNG.
    base = Image.fromarray(noise(5, 8, 3).astype(np.uint8))
    for k in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = k
        cases.append(Case(f"png eXIf orientation {k}", pil_bytes(base, "PNG", exif=exif.tobytes())))
    for k in (3, 6, 8):
        cases.append(Case(f"png eXIf big-endian orientation {k}",
                          png_file(noise(5, 8, 3), 8, 2, before_idat=chunk(b"eXIf", exif_block(k, True)))))
        cases.append(Case(f"png eXIf after IDAT orientation {k}",
                          png_file(noise(5, 8, 3), 8, 2, after_idat=chunk(b"eXIf", exif_block(k, False, True)))))
        info = PngImagePlugin.PngInfo()
        info.add_text("Raw profile type exif", raw_profile_exif(b"Exif\x00\x00" + exif_block(k)), zip=True)
        cases.append(Case(f"png Raw profile type exif orientation {k}", pil_bytes(base, "PNG", pnginfo=info)))
        info = PngImagePlugin.PngInfo()
        info.add_itxt("XML:com.adobe.xmp", xmp_packet(k))
        cases.append(Case(f"png XMP orientation {k}", pil_bytes(base, "PNG", pnginfo=info)))
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", xmp_packet(6))
    exif = Image.Exif()
    exif[0x0112] = 3
    cases.append(Case("png eXIf 3 wins over XMP 6", pil_bytes(base, "PNG", exif=exif.tobytes(), pnginfo=info)))
    cases.append(Case("png eXIf orientation as LONG",
                      png_file(noise(5, 8, 3), 8, 2, before_idat=chunk(b"eXIf", exif_block(6).replace(
                          b"\x12\x01\x03\x00\x01\x00\x00\x00\x06\x00", b"\x12\x01\x04\x00\x01\x00\x00\x00\x06\x00")))))
    for label, typ, count, value in [
            ("BYTE", 1, 1, b"\x06\x00\x00\x00"), ("ASCII", 2, 2, b"6\x00\x00\x00"), ("SBYTE", 6, 1, b"\x06\x00\x00\x00"),
            ("SSHORT", 8, 1, b"\x06\x00\x00\x00"), ("SLONG", 9, 1, b"\x06\x00\x00\x00"),
            ("UNDEFINED", 7, 1, b"\x06\x00\x00\x00"), ("FLOAT", 11, 1, struct.pack("<f", 6.0)),
            ("FLOAT 6.5", 11, 1, struct.pack("<f", 6.5)), ("count 0", 3, 0, b"\x06\x00\x00\x00"),
            ("count 2", 3, 2, b"\x08\x00\x06\x00"), ("unknown type 99", 99, 1, b"\x06\x00\x00\x00"),
            ("value 9", 3, 1, b"\x09\x00\x00\x00")]:
        ifd = b"II\x2a\x00\x08\x00\x00\x00\x01\x00" + struct.pack("<HHI", 0x0112, typ, count) + value + bytes(4)
        info = PngImagePlugin.PngInfo()
        info.add_itxt("XML:com.adobe.xmp", xmp_packet(3))
        cases.append(Case(f"png eXIf Orientation {label} (+ XMP 3)",
                          pil_bytes(base, "PNG", exif=ifd, pnginfo=info)))
    for label, typ, offset_value in [("RATIONAL 12/2", 5, (12, 2)), ("RATIONAL 6/0", 5, (6, 0)),
                                     ("SRATIONAL -6/-1", 10, (-6 & 0xFFFFFFFF, -1 & 0xFFFFFFFF)),
                                     ("DOUBLE 8.0", 12, None)]:
        data = struct.pack("<d", 8.0) if offset_value is None else struct.pack("<II", *offset_value)
        ifd = (b"II\x2a\x00\x08\x00\x00\x00\x01\x00" + struct.pack("<HHII", 0x0112, typ, 1, 26) + bytes(4) + data)
        cases.append(Case(f"png eXIf Orientation {label}", pil_bytes(base, "PNG", exif=ifd)))
    make_then_orientation = exif_block(6, False, True)
    broken = bytearray(make_then_orientation)
    broken[18:22] = struct.pack("<I", len(broken) - 4)  # Make's 12 bytes run past the end
    cases.append(Case("png eXIf Make past the end stops the IFD", pil_bytes(base, "PNG", exif=bytes(broken))))
    broken[14:18] = struct.pack("<I", 5000)  # count so large the data cannot be in the block: skipped
    cases.append(Case("png eXIf oversized Make is skipped", pil_bytes(base, "PNG", exif=bytes(broken))))
    cases.append(Case("png tEXt exif orientation 6",
                      png_file(noise(5, 8, 3), 8, 2, before_idat=chunk(b"tEXt", b"exif\x00Exif\x00\x00" + exif_block(6)))))
    cases.append(Case("png zTXt exif (Pillow: str, TypeError)",
                      png_file(noise(5, 8, 3), 8, 2, before_idat=chunk(
                          b"zTXt", b"exif\x00\x00" + zlib.compress(b"Exif\x00\x00" + exif_block(6))))))
    cases.append(Case("png Raw profile type exif bad hex",
                      png_file(noise(5, 8, 3), 8, 2, before_idat=chunk(b"tEXt", b"Raw profile type exif\x00\nexif\n   4\nzz00\n"))))
    cases.append(Case("png Raw profile type exif short",
                      png_file(noise(5, 8, 3), 8, 2, before_idat=chunk(b"tEXt", b"Raw profile type exif\x00\nexif\n"))))
    cases.append(Case("png zTXt bad method", png_file(noise(5, 8, 3), 8, 2, before_idat=chunk(b"zTXt", b"k\x00\x01xx"))))
    cases.append(Case("png zTXt bad zlib data", png_file(noise(5, 8, 3), 8, 2, before_idat=chunk(b"zTXt", b"k\x00\x00xx"))))
    cases.append(Case("png zTXt over 1 MiB", png_file(noise(5, 8, 3), 8, 2, before_idat=chunk(
        b"zTXt", b"k\x00\x00" + zlib.compress(bytes(2 << 20))))))
    cases.append(Case("png iTXt XMP 6 compressed, not UTF-8", png_file(noise(5, 8, 3), 8, 2, before_idat=chunk(
        b"iTXt", b"XML:com.adobe.xmp\x00\x01\x00\x00\x00" + zlib.compress(xmp_packet(6).encode() + b"\xff")))))
    cases.append(Case("png truncated tRNS", png_file(noise(5, 8, 1), 8, 0, before_idat=chunk(b"tRNS", b"\x01"))))
    cases.append(Case("png truncated sRGB after IDAT", png_file(noise(5, 8, 1), 8, 0, after_idat=chunk(b"sRGB", b""))))
    cases.append(Case("png bad iCCP method", png_file(noise(5, 8, 1), 8, 0, before_idat=chunk(b"iCCP", b"x\x00\x05zz"))))
    cases.append(Case("png second acTL cancels the animation",
                      png_file(noise(5, 8, 3), 8, 2, before_idat=chunk(b"acTL", struct.pack(">II", 2, 0)) * 2)))
    big16 = noise(217, 301, 3, 65536)
    cases.append(Case("png 16-bit RGB adam7 301x217", png_file(big16, 16, 2, interlace=True)))
    cases.append(Case("png 2-bit palette adam7 301x217",
                      png_file(noise(217, 301, 1, 4), 2, 3, interlace=True, palette=bytes(range(12)))))
    cases.append(Case("png eXIf not a TIFF header (Pillow raises)",
                      png_file(noise(5, 8, 3), 8, 2, before_idat=chunk(b"eXIf", b"XX\x2a\x00" + bytes(10)))))
    cases.append(Case("png eXIf truncated IFD", png_file(noise(5, 8, 3), 8, 2,
                                                         before_idat=chunk(b"eXIf", exif_block(6)[:14]))))
    # APNG: the first frame, with and without a separate default image.
    frames = [Image.fromarray(noise(6, 9, 3).astype(np.uint8)) for _ in range(3)]
    cases.append(Case("apng first frame", apng(frames, False)))
    cases.append(Case("apng default image not in the animation", apng(frames, True)))
    rgba_frames = [Image.fromarray(noise(6, 9, 4).astype(np.uint8)) for _ in range(3)]
    cases.append(Case("apng RGBA first frame", apng(rgba_frames, False)))
    fctl = chunk(b"acTL", struct.pack(">II", 1, 0)) + chunk(b"fcTL", struct.pack(">IIIIIHHBB", 0, 4, 3, 2, 1, 1, 1, 0, 0))
    cases.append(Case("apng first fcTL smaller than the image",
                      png_file(noise(3, 4, 3), 8, 2, ihdr=struct.pack(">IIBBBBB", 9, 6, 8, 2, 0, 0, 0),
                               before_idat=fctl)))
    return cases


def jpeg_cases(binary: Path, tmp: Path) -> list[Case]:
    cases = []
    for h, w in [(1, 1), (7, 3), (17, 1000), (61, 83)]:
        for content in ("noise", "smooth"):
            rgb = (noise(h, w, 3) if content == "noise" else smooth(h, w, 3)).astype(np.uint8)
            im = Image.fromarray(rgb)
            for quality in (50, 95):
                for sub, label in ((0, "4:4:4"), (1, "4:2:2"), (2, "4:2:0")):
                    cases.append(Case(f"jpeg {content} {w}x{h} q{quality} {label}",
                                      pil_bytes(im, "JPEG", quality=quality, subsampling=sub)))
            cases.append(Case(f"jpeg {content} {w}x{h} progressive",
                              pil_bytes(im, "JPEG", quality=90, progressive=True)))
            cases.append(Case(f"jpeg {content} {w}x{h} grey", pil_bytes(im.convert("L"), "JPEG", quality=90)))
            cases.append(Case(f"jpeg {content} {w}x{h} CMYK", pil_bytes(im.convert("CMYK"), "JPEG", quality=90)))
    photo = Image.fromarray(smooth(240, 320, 3).astype(np.uint8))
    cases.append(Case("jpeg 320x240 optimize + restart markers",
                      pil_bytes(photo, "JPEG", quality=85, optimize=True, restart_marker_blocks=1)))
    cases.append(Case("jpeg 320x240 grey progressive", pil_bytes(photo.convert("L"), "JPEG", progressive=True)))
    cases.append(Case("jpeg 320x240 CMYK progressive", pil_bytes(photo.convert("CMYK"), "JPEG", progressive=True)))
    kinds = ["cmyk", "cmyk-noadobe", "ycck", "rgb", "arith", "ycbcr-1x2", "ycbcr-2x1", "ycbcr-2x2", "ycbcr-4x1",
             "ycbcr-1x4", "ycbcr-4x2", "ycbcr-3x1"]
    for kind in kinds:
        for w, h in ((37, 23), (1, 1), (130, 67)):
            out = tmp / f"{kind}.jpg"
            subprocess.run([str(binary), "--write-jpeg", kind, str(w), str(h), "7", str(out)], check=True)
            cases.append(Case(f"jpeg libjpeg {kind} {w}x{h}", out.read_bytes()))
    large = Image.fromarray(smooth(1500, 2000, 3).astype(np.uint8))
    cases.append(Case("jpeg 2000x1500 q92 4:2:0", pil_bytes(large, "JPEG", quality=92)))
    cases.append(Case("jpeg 2000x1500 progressive 4:4:4", pil_bytes(large, "JPEG", progressive=True, subsampling=0)))
    # EXIF orientation 1..8, both byte orders, and the XMP fallback.
    base = Image.fromarray(smooth(24, 40, 3).astype(np.uint8))
    for k in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = k
        cases.append(Case(f"jpeg EXIF orientation {k}", pil_bytes(base, "JPEG", exif=exif.tobytes())))
        cases.append(Case(f"jpeg EXIF big-endian orientation {k}",
                          pil_bytes(base, "JPEG", exif=b"Exif\x00\x00" + exif_block(k, True, True))))
    for k in (5, 6, 7):
        cases.append(Case(f"jpeg XMP orientation {k}", pil_bytes(base, "JPEG", xmp=xmp_packet(k).encode())))
        cases.append(Case(f"jpeg progressive grey EXIF orientation {k}",
                          pil_bytes(base.convert("L"), "JPEG", progressive=True,
                                    exif=b"Exif\x00\x00" + exif_block(k))))
    plain = pil_bytes(base, "JPEG")
    bad_exif = insert_jpeg_segment(plain, 0xFFE1, b"Exif\x00\x00XX\x2a\x00" + bytes(10))
    cases.append(Case("jpeg bad EXIF header, no JFIF dpi (Pillow ignores it)", bad_exif))
    cases.append(Case("jpeg bad EXIF header, JFIF dpi (Pillow raises)", jfif_with_dpi(bad_exif)))
    cases.append(Case("jpeg EXIF 6 with JFIF dpi",
                      jfif_with_dpi(pil_bytes(base, "JPEG", exif=b"Exif\x00\x00" + exif_block(6)))))
    cases.append(Case("mpo first frame", pil_bytes(base, "MPO", save_all=True,
                                                   append_images=[base.transpose(Image.Transpose.ROTATE_90)])))
    return cases


def damaged_cases() -> list[Case]:
    cases = []
    samples = noise(40, 50, 3)
    png = png_file(samples, 8, 2, stream=zlib.compress(image_stream(samples, 8, False, "random")))
    for cut in (8, 20, 33, 60, len(png) // 2, len(png) - 30, len(png) - 16, len(png) - 14, len(png) - 12,
                len(png) - 5, len(png) - 1):
        cases.append(Case(f"png truncated at {cut}/{len(png)}", png[:cut]))
    adam7 = png_file(samples, 8, 2, interlace=True)
    cases.append(Case("png adam7 truncated at half", adam7[: len(adam7) // 2]))
    cases.append(Case("png bad IHDR CRC", png[:29] + b"\x00\x00\x00\x00" + png[33:]))
    idat = png.index(b"IDAT") + 4
    for offset in (2, 50, 400, 2000):
        flipped = bytearray(png)
        flipped[idat + offset] ^= 0x55
        cases.append(Case(f"png IDAT byte {offset} flipped", bytes(flipped)))
    cases.append(Case("png bad filter type", png_file(samples, 8, 2, stream=zlib.compress(
        bytes([7]) + image_stream(samples, 8, False, "0")[1:]))))
    cases.append(Case("png zero width", png_file(samples, 8, 2, ihdr=struct.pack(">IIBBBBB", 0, 40, 8, 2, 0, 0, 0))))
    cases.append(Case("png bit depth 3", png_file(samples, 8, 2, ihdr=struct.pack(">IIBBBBB", 50, 40, 3, 2, 0, 0, 0))))
    cases.append(Case("png over max_pixels", png, max_pixels=1999))
    cases.append(Case("png at max_pixels", png, max_pixels=2000))
    cases.append(Case("png signature only", PNG_SIGNATURE))

    jpeg = pil_bytes(Image.fromarray(smooth(64, 80, 3).astype(np.uint8)), "JPEG", quality=90)
    for cut in (3, 20, 100, 300, len(jpeg) // 2, len(jpeg) - 100, len(jpeg) - 2, len(jpeg) - 1):
        cases.append(Case(f"jpeg truncated at {cut}/{len(jpeg)}", jpeg[:cut]))
    progressive = pil_bytes(Image.fromarray(smooth(64, 80, 3).astype(np.uint8)), "JPEG", progressive=True)
    cases.append(Case("jpeg progressive truncated at 3/4", progressive[: len(progressive) * 3 // 4]))
    sos = jpeg.index(b"\xff\xda")
    for offset in (40, 300, 900):
        flipped = bytearray(jpeg)
        flipped[sos + offset] ^= 0x5A
        cases.append(Case(f"jpeg scan byte {offset} flipped", bytes(flipped)))
    # libjpeg-turbo 3 (Pillow) rejects a second SOF before reading its length, 2.1 only after it.
    cases.append(Case("jpeg EOI replaced by SOF0", jpeg[:-1] + b"\xc0"))
    cases.append(Case("jpeg EOI replaced by SOF9 + 1 byte", jpeg[:-1] + b"\xc9\x00"))
    cases.append(Case("jpeg trailing SOF2 with a full header", jpeg[:-2] + b"\xff\xc2\x00\x11\x08\x00\x10\x00\x10\x03"))
    cases.append(Case("jpeg trailing DHT marker", jpeg[:-2] + b"\xff\xc4"))
    cases.append(Case("jpeg garbage after SOI", b"\xff\xd8\xff" + bytes(RNG.integers(0, 256, 200, dtype=np.uint8))))
    cases.append(Case("jpeg over max_pixels", jpeg, max_pixels=64 * 80 - 1))
    cases.append(Case("jpeg 12-bit SOF", jpeg.replace(b"\xff\xc0\x00\x11\x08", b"\xff\xc0\x00\x11\x0c", 1)))

    cases.append(Case("empty file", b""))
    cases.append(Case("text file", b"hello, this is not an image\n"))
    cases.append(Case("random bytes", bytes(RNG.integers(0, 256, 500, dtype=np.uint8))))
    cases.append(Case("missing path", None, setup="missing"))
    cases.append(Case("directory", None, setup="directory"))
    small = Image.fromarray(noise(10, 12, 3).astype(np.uint8))
    for fmt in ("GIF", "TIFF", "BMP", "WEBP", "PPM", "ICO"):
        cases.append(Case(f"{fmt.lower()} (unsupported natively)", pil_bytes(small, fmt), unsupported=True))
    cases.append(Case("gif header only (unsupported natively)", b"GIF89a" + bytes(20), unsupported=True))
    return cases


# --------------------------------------------------------------------------------------------
# Running both sides


def python_side(path: Path, max_pixels: int) -> np.ndarray | str:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return np.asarray(load_image(path, max_pixels))
    except Exception as exc:  # noqa: BLE001 - any failure is an error outcome to compare
        return f"{type(exc).__name__}: {exc}"


def native_side(binary: Path, path: Path, max_pixels: int, out: Path) -> np.ndarray | str:
    run = subprocess.run([str(binary), str(path), str(out), str(max_pixels)], capture_output=True, text=True)
    if run.returncode == 2:
        return run.stdout.strip()
    if run.returncode != 0 or run.stderr:
        return f"CRASH rc={run.returncode} {run.stderr.strip()}"
    raw = out.read_bytes()
    parts = raw.split(b"\n", 3)
    width, height = map(int, parts[1].split())
    return np.frombuffer(parts[3], np.uint8).reshape(height, width, 3)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", type=Path, default=Path("/tmp/check_image_io"))
    parser.add_argument("--keep", type=Path, help="write the corpus here instead of a temporary folder")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = args.keep or Path(tmp_name)
        tmp.mkdir(parents=True, exist_ok=True)
        cases = png_cases() + jpeg_cases(args.binary, tmp) + damaged_cases()
        failures = 0
        width = max(len(c.name) for c in cases)
        for i, case in enumerate(cases):
            path = tmp / f"case{i:03d}.{'png' if 'png' in case.name else 'jpg' if 'jp' in case.name else 'bin'}"
            if case.setup == "missing":
                path = tmp / "does-not-exist.png"
            elif case.setup == "directory":
                path = tmp / "a-directory.png"
                path.mkdir(exist_ok=True)
            else:
                path.write_bytes(case.data)
            expected = python_side(path, case.max_pixels)
            actual = native_side(args.binary, path, case.max_pixels, tmp / "out.ppm")
            if isinstance(actual, str) and actual.startswith("CRASH"):
                verdict, ok = actual, False
            elif case.unsupported:
                ok = isinstance(actual, str)
                python = "error" if isinstance(expected, str) else "reads it"
                verdict = f"native refuses (Pillow {python}): {actual}" if ok else "MISMATCH native decoded it"
            elif isinstance(expected, str) and isinstance(actual, str):
                verdict, ok = f"both error | python: {expected} | native: {actual}", True
            elif isinstance(expected, str) or isinstance(actual, str):
                ok = False
                verdict = f"MISMATCH python: {expected if isinstance(expected, str) else 'ok'} | " \
                          f"native: {actual if isinstance(actual, str) else 'ok'}"
            elif expected.shape != actual.shape:
                verdict, ok = f"SHAPE python {expected.shape} native {actual.shape}", False
            else:
                diff = np.abs(expected.astype(np.int16) - actual.astype(np.int16))
                count = int(np.count_nonzero(diff))
                ok = count == 0
                verdict = (f"equal {expected.shape[1]}x{expected.shape[0]}" if ok else
                           f"DIFFER {count}/{diff.size} values, max abs diff {int(diff.max())}")
            failures += not ok
            print(f"{'ok ' if ok else 'BAD'} {case.name:<{width}}  {verdict}")
        print(f"\n{len(cases) - failures}/{len(cases)} cases match, {failures} do not")
        return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
