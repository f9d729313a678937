// Image files -> 8-bit RGB, equal to preprocessing.load_image: Pillow 13's Image.open, image.load(),
// ImageOps.exif_transpose and convert("RGB"), for PNG and JPEG.
//
// PNG is decoded with zlib the way Pillow's own PNG reader does it (PngImagePlugin.py and
// libImaging/ZipDecode.c: the same 64 KiB blocks per inflate call, the same filters, the same
// lenience at the end of the data and the same chunk checks), because libpng accepts and rejects a
// different set of damaged files. JPEG is decoded with libjpeg(-turbo) set up as Pillow's
// JpegDecode.c sets it up.
#include "image_io.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <csetjmp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <new>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include <jpeglib.h>
#include <zlib.h>

namespace p2s {
namespace {

using Bytes = std::vector<uint8_t>;

// A file that is damaged; load_image words it as preprocessing.load_image words Pillow's errors.
struct CorruptImage : std::runtime_error {
    using std::runtime_error::runtime_error;
};

[[noreturn]] void corrupt(const std::string& detail) { throw CorruptImage(detail); }
[[noreturn]] void truncated() { corrupt("image file is truncated"); }

uint32_t be16(const uint8_t* p) { return static_cast<uint32_t>(p[0]) << 8 | p[1]; }
uint32_t be32(const uint8_t* p) {
    return static_cast<uint32_t>(p[0]) << 24 | static_cast<uint32_t>(p[1]) << 16 |
           static_cast<uint32_t>(p[2]) << 8 | p[3];
}

bool starts_with(const uint8_t* p, size_t n, const char* prefix, size_t prefix_len) {
    return n >= prefix_len && std::memcmp(p, prefix, prefix_len) == 0;
}

std::string with_thousands(int64_t value) {
    std::string digits = std::to_string(value);
    for (int i = static_cast<int>(digits.size()) - 3; i > 0; i -= 3) digits.insert(i, ",");
    return digits;
}

// ---------------------------------------------------------------------------------------------
// Reading the file

Bytes read_file(const std::string& path) {
    namespace fs = std::filesystem;
    std::error_code ec;
    const fs::file_status status = fs::status(path, ec);
    if (status.type() == fs::file_type::not_found) {
        throw InputError("image " + path + " does not exist; check the path");
    }
    if (ec) throw InputError("image " + path + " cannot be read (" + ec.message() + ")");
    if (status.type() != fs::file_type::regular) {
        throw InputError("image " + path + " is not a file; pass an image file (PNG or JPEG)");
    }
    std::FILE* file = std::fopen(path.c_str(), "rb");
    if (file == nullptr) {
        throw InputError("image " + path + " cannot be read (" + std::strerror(errno) + ")");
    }
    Bytes data;
    std::array<uint8_t, 1 << 16> block;
    size_t n;
    while ((n = std::fread(block.data(), 1, block.size(), file)) > 0) {
        data.insert(data.end(), block.begin(), block.begin() + n);
    }
    const bool failed = std::ferror(file) != 0;
    std::fclose(file);
    if (failed) throw InputError("image " + path + " cannot be read (read error)");
    if (data.empty()) throw InputError("image " + path + " is empty (0 bytes); re-export or re-download it");
    return data;
}

// Formats Pillow (and so the ONNX Runtime engine) may read but the native engine does not.
const char* other_image_format(const Bytes& d) {
    const uint8_t* p = d.data();
    const size_t n = d.size();
    if (starts_with(p, n, "GIF87a", 6) || starts_with(p, n, "GIF89a", 6)) return "a GIF";
    if (starts_with(p, n, "II*\0", 4) || starts_with(p, n, "MM\0*", 4)) return "a TIFF";
    if (starts_with(p, n, "BM", 2)) return "a BMP";
    if (n >= 12 && std::memcmp(p, "RIFF", 4) == 0 && std::memcmp(p + 8, "WEBP", 4) == 0) return "a WebP";
    if (starts_with(p, n, "\0\0\1\0", 4)) return "an ICO";
    if (starts_with(p, n, "8BPS", 4)) return "a PSD";
    if (starts_with(p, n, "\0\0\0\x0cjP  ", 8) || starts_with(p, n, "\xff\x4f\xff\x51", 4)) return "a JPEG 2000";
    if (n >= 12 && std::memcmp(p + 4, "ftyp", 4) == 0) return "a HEIF/AVIF";
    if (starts_with(p, n, "%PDF", 4)) return "a PDF";
    if (n >= 2 && p[0] == 'P' && p[1] >= '1' && p[1] <= '7') return "a PNM";
    return nullptr;
}

// ---------------------------------------------------------------------------------------------
// EXIF orientation, as Pillow's Image.Exif reads IFD0 (TiffImagePlugin.ImageFileDirectory_v2.load)

constexpr uint16_t kOrientationTag = 0x0112;

// The Orientation entry of an EXIF block. `present` is Pillow's `Orientation in exif` (which turns
// off the XMP fallback); `value` is the orientation 1..8 when the stored value equals that integer in
// Python (exif_transpose's dict lookup), else 0: no transpose.
struct ExifOrientation {
    bool present = false;
    int value = 0;
};

// Pillow raises while building the IFD (bad TIFF header): the caller decides what that means.
struct ExifHeaderError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Unsigned integers of a TIFF structure in its byte order; callers check the bounds.
struct TiffReader {
    const uint8_t* p;
    bool little;

    uint64_t u(size_t at, int size) const {
        uint64_t v = 0;
        for (int i = 0; i < size; ++i) v = v << 8 | p[at + (little ? size - 1 - i : i)];
        return v;
    }
};

// Integer k in 1..8 that `value` equals in Python (2 == 2.0 == IFDRational(4, 2)), else 0.
int as_orientation(double value) {
    for (int k = 1; k <= 8; ++k) {
        if (value == k) return k;
    }
    return 0;
}

int orientation_value(const TiffReader& t, size_t at, int type) {
    auto sext = [](uint64_t v, int bits) {
        const uint64_t sign = uint64_t{1} << (bits - 1);
        return static_cast<int64_t>((v ^ sign) - sign);
    };
    switch (type) {
        case 3: return as_orientation(static_cast<double>(t.u(at, 2)));           // SHORT
        case 4: case 13: return as_orientation(static_cast<double>(t.u(at, 4)));  // LONG, IFD
        case 16: return as_orientation(static_cast<double>(t.u(at, 8)));          // LONG8
        case 6: return as_orientation(static_cast<double>(sext(t.u(at, 1), 8)));  // SBYTE
        case 8: return as_orientation(static_cast<double>(sext(t.u(at, 2), 16)));
        case 9: return as_orientation(static_cast<double>(sext(t.u(at, 4), 32)));
        case 5: case 10: {  // (S)RATIONAL: IFDRational; a zero denominator is NaN
            int64_t num = static_cast<int64_t>(t.u(at, 4)), den = static_cast<int64_t>(t.u(at + 4, 4));
            if (type == 10) {
                num = sext(static_cast<uint64_t>(num), 32);
                den = sext(static_cast<uint64_t>(den), 32);
            }
            if (den == 0 || num % den != 0) return 0;
            return as_orientation(static_cast<double>(num / den));
        }
        case 11: {
            float f;
            const uint32_t bits = static_cast<uint32_t>(t.u(at, 4));
            std::memcpy(&f, &bits, 4);
            return as_orientation(f);
        }
        case 12: {
            double d;
            const uint64_t bits = t.u(at, 8);
            std::memcpy(&d, &bits, 8);
            return as_orientation(d);
        }
        default: return 0;  // BYTE and UNDEFINED load as bytes, ASCII as str: never equal to an int
    }
}

ExifOrientation read_exif_orientation(const uint8_t* p, size_t n) {
    // Exif.load: strip up to two "Exif\0\0" prefixes; empty data means no EXIF.
    for (int i = 0; i < 2 && starts_with(p, n, "Exif\0\0", 6); ++i) {
        p += 6;
        n -= 6;
    }
    if (n == 0) return {};
    static const char* const kPrefixes[] = {"MM\x00\x2a", "II\x2a\x00", "MM\x2a\x00", "II\x00\x2a",
                                            "MM\x00\x2b", "II\x2b\x00"};
    bool accepted = false;
    for (const char* prefix : kPrefixes) accepted = accepted || starts_with(p, std::min<size_t>(n, 8), prefix, 4);
    if (!accepted) throw ExifHeaderError("EXIF data is not a TIFF structure");
    // The IFD offset is read from the 8-byte header (BigTIFF would need 16 bytes: Pillow fails too).
    if (n < 8 || p[2] == 0x2b) throw ExifHeaderError("EXIF header is truncated");
    const TiffReader t{p, p[0] == 'I'};
    const uint64_t ifd = t.u(4, 4);

    ExifOrientation result;
    if (ifd + 2 > n) return result;  // Pillow warns "Corrupt EXIF data" and keeps no tags
    const uint64_t count = t.u(ifd, 2);
    static const std::map<int, int> kUnitSize = {{1, 1}, {2, 1}, {3, 2}, {4, 4}, {5, 8}, {6, 1}, {7, 1},
                                                 {8, 2}, {9, 4}, {10, 8}, {11, 4}, {12, 8}, {13, 4}, {16, 8}};
    uint64_t total_size = 0;
    std::set<int> stored;  // ImageFileDirectory_v2._tagdata: the first stored entry of a tag wins
    for (uint64_t i = 0; i < count; ++i) {
        const uint64_t entry = ifd + 2 + 12 * i;
        if (entry + 12 > n) break;  // truncated IFD: the tags read so far stay
        const int tag = static_cast<int>(t.u(entry, 2));
        const int type = static_cast<int>(t.u(entry + 2, 2));
        const uint64_t values = t.u(entry + 4, 4);
        if (stored.count(tag) != 0) continue;
        const auto unit = kUnitSize.find(type);
        if (unit == kUnitSize.end()) continue;  // unsupported type: skipped
        const uint64_t size = values * static_cast<uint64_t>(unit->second);
        uint64_t data_at = entry + 8;
        if (size > 4) {
            data_at = t.u(entry + 8, 4);
            total_size += size;
            if (total_size > n) continue;   // "Tag data larger than file": skipped
            if (data_at + size > n) break;  // _safe_read fails: Pillow stops reading the IFD
        }
        if (size == 0) continue;
        stored.insert(tag);
        if (tag == kOrientationTag) {
            result.present = true;
            result.value = orientation_value(t, data_at, type);
        }
    }
    return result;
}

// ImageOps.exif_transpose's XMP fallback: re.search(r'tiff:Orientation(="|>)([0-9])').
std::optional<int> xmp_orientation(const Bytes& xmp) {
    static const std::string kKey = "tiff:Orientation";
    const std::string text(xmp.begin(), xmp.end());
    for (size_t at = text.find(kKey); at != std::string::npos; at = text.find(kKey, at + 1)) {
        size_t next = at + kKey.size();
        if (text.compare(next, 2, "=\"") == 0) {
            next += 2;
        } else if (text.compare(next, 1, ">") == 0) {
            next += 1;
        } else {
            continue;
        }
        if (next < text.size() && text[next] >= '0' && text[next] <= '9') return text[next] - '0';
    }
    return std::nullopt;
}

// Image.transpose for exif_transpose's methods: out(x, y) = in(sx, sy), sx/sy affine in x and y.
RgbImage apply_orientation(RgbImage in, int orientation) {
    if (orientation < 2 || orientation > 8) return in;
    const int w = in.width, h = in.height;
    const bool swap = orientation >= 5;
    RgbImage out(swap ? h : w, swap ? w : h);
    // Source pixel of output pixel (X, Y): x = x0 + xx X + xy Y, y = y0 + yx X + yy Y, where an
    // origin of -1 stands for the last column or row.
    struct Map { int x0, xx, xy, y0, yx, yy; };
    static const Map kMaps[] = {
        {0, 1, 0, 0, 0, 1},      // 1 (unused)
        {-1, -1, 0, 0, 0, 1},    // 2 FLIP_LEFT_RIGHT
        {-1, -1, 0, -1, 0, -1},  // 3 ROTATE_180
        {0, 1, 0, -1, 0, -1},    // 4 FLIP_TOP_BOTTOM
        {0, 0, 1, 0, 1, 0},      // 5 TRANSPOSE
        {0, 0, 1, -1, -1, 0},    // 6 ROTATE_270 (clockwise)
        {-1, 0, -1, -1, -1, 0},  // 7 TRANSVERSE
        {-1, 0, -1, 0, 1, 0},    // 8 ROTATE_90 (counter-clockwise)
    };
    const Map& m = kMaps[orientation - 1];
    const int x0 = m.x0 < 0 ? w - 1 : 0, y0 = m.y0 < 0 ? h - 1 : 0;
    for (int y = 0; y < out.height; ++y) {
        uint8_t* dst = out.row(y);
        for (int x = 0; x < out.width; ++x, dst += 3) {
            const int sx = x0 + m.xx * x + m.xy * y;
            const int sy = y0 + m.yx * x + m.yy * y;
            std::memcpy(dst, in.row(sy) + static_cast<size_t>(sx) * 3, 3);
        }
    }
    return out;
}

// ---------------------------------------------------------------------------------------------
// PNG (PngImagePlugin.PngImageFile and libImaging/ZipDecode.c)

constexpr size_t kMaxBlock = 65536;          // ImageFile.MAXBLOCK: bytes per decoder call
constexpr size_t kMaxTextChunk = 1 << 20;    // PngImagePlugin.MAX_TEXT_CHUNK

enum class Inflated { kOk, kZlibError, kTooLarge };

// PngImagePlugin._safe_zlib_decompress: zlib.decompressobj().decompress(data, MAX_TEXT_CHUNK).
Inflated safe_zlib_decompress(const uint8_t* p, size_t n, Bytes* out) {
    z_stream zs{};
    if (inflateInit(&zs) != Z_OK) return Inflated::kZlibError;
    out->resize(kMaxTextChunk);
    zs.next_in = const_cast<Bytef*>(p);
    zs.avail_in = static_cast<uInt>(n);
    zs.next_out = out->data();
    zs.avail_out = static_cast<uInt>(out->size());
    const int ret = inflate(&zs, Z_SYNC_FLUSH);
    const bool input_left = zs.avail_in > 0;
    out->resize(zs.total_out);
    inflateEnd(&zs);
    if (ret == Z_STREAM_END) return Inflated::kOk;
    if (ret != Z_OK && ret != Z_BUF_ERROR) return Inflated::kZlibError;
    return input_left ? Inflated::kTooLarge : Inflated::kOk;  // input left = output cap reached
}

// Python's bytes.decode("utf-8", "strict") succeeds: no overlong forms, surrogates or code
// points above U+10FFFF.
bool valid_utf8(const uint8_t* p, size_t n) {
    size_t i = 0;
    while (i < n) {
        const uint8_t lead = p[i];
        if (lead < 0x80) {
            ++i;
            continue;
        }
        int extra;
        uint32_t cp;
        if (lead >= 0xC2 && lead <= 0xDF) {
            extra = 1;
            cp = lead & 0x1F;
        } else if (lead >= 0xE0 && lead <= 0xEF) {
            extra = 2;
            cp = lead & 0x0F;
        } else if (lead >= 0xF0 && lead <= 0xF4) {
            extra = 3;
            cp = lead & 0x07;
        } else {
            return false;
        }
        for (int k = 1; k <= extra; ++k) {
            if (i + k >= n || (p[i + k] & 0xC0) != 0x80) return false;
            cp = cp << 6 | (p[i + k] & 0x3F);
        }
        if ((extra == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
            (extra == 3 && (cp < 0x10000 || cp > 0x10FFFF))) {
            return false;
        }
        i += static_cast<size_t>(extra) + 1;
    }
    return true;
}

// Pillow's rawmodes for the PNG bit depth / colour type pairs (PngImagePlugin._MODES).
enum class PngRaw { k1, kL2, kL4, kL, kI16B, kRGB, kRGB16B, kP1, kP2, kP4, kP, kLA, kLA16B, kRGBA, kRGBA16B };

struct PngMode {
    PngRaw raw;
    int bits;  // bits per pixel of the rawmode
};

std::optional<PngMode> png_mode(int bit_depth, int colour_type) {
    switch (colour_type << 8 | bit_depth) {
        case 0 << 8 | 1: return PngMode{PngRaw::k1, 1};
        case 0 << 8 | 2: return PngMode{PngRaw::kL2, 2};
        case 0 << 8 | 4: return PngMode{PngRaw::kL4, 4};
        case 0 << 8 | 8: return PngMode{PngRaw::kL, 8};
        case 0 << 8 | 16: return PngMode{PngRaw::kI16B, 16};
        case 2 << 8 | 8: return PngMode{PngRaw::kRGB, 24};
        case 2 << 8 | 16: return PngMode{PngRaw::kRGB16B, 48};
        case 3 << 8 | 1: return PngMode{PngRaw::kP1, 1};
        case 3 << 8 | 2: return PngMode{PngRaw::kP2, 2};
        case 3 << 8 | 4: return PngMode{PngRaw::kP4, 4};
        case 3 << 8 | 8: return PngMode{PngRaw::kP, 8};
        case 4 << 8 | 8: return PngMode{PngRaw::kLA, 16};
        case 4 << 8 | 16: return PngMode{PngRaw::kLA16B, 32};
        case 6 << 8 | 8: return PngMode{PngRaw::kRGBA, 32};
        case 6 << 8 | 16: return PngMode{PngRaw::kRGBA16B, 64};
        default: return std::nullopt;
    }
}

bool is_palette(PngRaw raw) {
    return raw == PngRaw::kP1 || raw == PngRaw::kP2 || raw == PngRaw::kP4 || raw == PngRaw::kP;
}

using Palette = std::array<uint8_t, 256 * 3>;

// Unpacks n pixels of a PNG row straight to RGB, i.e. Pillow's unpacker for the rawmode followed
// by convert("RGB"): 1/2/4-bit grey scaled to 0..255, 16-bit grey ("I;16") clipped to 255, 16-bit
// colour keeps the high byte, alpha dropped, palette indices looked up (missing entries are black).
void unpack_png_pixels(PngRaw raw, const uint8_t* src, size_t n, const Palette& palette, uint8_t* dst) {
    auto grey = [&](size_t k, uint8_t v) { dst[3 * k] = dst[3 * k + 1] = dst[3 * k + 2] = v; };
    auto rgb = [&](size_t k, const uint8_t* c) { std::memcpy(dst + 3 * k, c, 3); };
    auto rgb16 = [&](size_t k, const uint8_t* c) {
        dst[3 * k] = c[0];
        dst[3 * k + 1] = c[2];
        dst[3 * k + 2] = c[4];
    };
    auto packed = [&](size_t k, int bits) {
        const size_t bit = k * bits;
        return (src[bit / 8] >> (8 - bits - bit % 8)) & ((1 << bits) - 1);
    };
    for (size_t k = 0; k < n; ++k) {
        switch (raw) {
            case PngRaw::k1: grey(k, packed(k, 1) ? 255 : 0); break;
            case PngRaw::kL2: grey(k, static_cast<uint8_t>(packed(k, 2) * 0x55)); break;
            case PngRaw::kL4: grey(k, static_cast<uint8_t>(packed(k, 4) * 0x11)); break;
            case PngRaw::kL: grey(k, src[k]); break;
            case PngRaw::kI16B: grey(k, static_cast<uint8_t>(std::min<uint32_t>(be16(src + 2 * k), 255))); break;
            case PngRaw::kRGB: rgb(k, src + 3 * k); break;
            case PngRaw::kRGB16B: rgb16(k, src + 6 * k); break;
            case PngRaw::kP1: rgb(k, &palette[3 * packed(k, 1)]); break;
            case PngRaw::kP2: rgb(k, &palette[3 * packed(k, 2)]); break;
            case PngRaw::kP4: rgb(k, &palette[3 * packed(k, 4)]); break;
            case PngRaw::kP: rgb(k, &palette[3 * src[k]]); break;
            case PngRaw::kLA: grey(k, src[2 * k]); break;
            case PngRaw::kLA16B: grey(k, src[4 * k]); break;
            case PngRaw::kRGBA: rgb(k, src + 4 * k); break;
            case PngRaw::kRGBA16B: rgb16(k, src + 8 * k); break;
        }
    }
}

// libImaging/ZipDecode.c for PNG: inflate row by row, undo the filters, de-interlace (Adam7), and
// unpack into the image. decode() is called once per block of image data, as ImageFile.load does.
class PngRowDecoder {
public:
    enum class Status { kNeedMore, kDone };

    PngRowDecoder(RgbImage* image, PngMode mode, const Palette& palette, bool interlaced, int xoff, int yoff,
                  int xsize, int ysize)
        : image_(image), mode_(mode), palette_(palette), interlaced_(interlaced), xoff_(xoff), yoff_(yoff),
          xsize_(xsize), ysize_(ysize), bytes_((static_cast<size_t>(mode.bits) * xsize + 7) / 8),
          buffer_(bytes_ + 1, 0), previous_(bytes_ + 1, 0) {
        if (inflateInit(&zs_) != Z_OK) throw std::bad_alloc();
        row_len_ = interlaced_ ? pass_row_len(0) : bytes_;
    }
    ~PngRowDecoder() { inflateEnd(&zs_); }
    PngRowDecoder(const PngRowDecoder&) = delete;
    PngRowDecoder& operator=(const PngRowDecoder&) = delete;

    Status decode(const uint8_t* data, size_t n) {
        zs_.next_in = const_cast<Bytef*>(data);
        zs_.avail_in = static_cast<uInt>(n);
        while (zs_.avail_in > 0) {
            zs_.next_out = buffer_.data() + last_output_;
            zs_.avail_out = static_cast<uInt>(row_len_ + 1 - last_output_);
            const int err = inflate(&zs_, Z_NO_FLUSH);
            if (err < 0) corrupt(std::string("zlib: ") + (zs_.msg != nullptr ? zs_.msg : "decompression failed"));
            const size_t got = row_len_ + 1 - zs_.avail_out;
            if (got < row_len_ + 1) {
                last_output_ = got;
                break;  // need more input data
            }
            unfilter();
            store_row();
            last_output_ = 0;
            // Pillow stops at the last row, or when the stream ends on a row boundary (the rows
            // not reached stay black); it never reads the zlib checksum that follows.
            if (y_ >= ysize_ || err == Z_STREAM_END) return Status::kDone;
            std::swap(buffer_, previous_);
        }
        return Status::kNeedMore;
    }

private:
    static constexpr int kOffset[] = {7, 3, 3, 1, 1, 0, 0};
    static constexpr int kStartCol[] = {0, 4, 0, 2, 0, 1, 0};
    static constexpr int kStartRow[] = {0, 0, 4, 0, 2, 0, 1};
    static constexpr int kColStep[] = {8, 8, 4, 4, 2, 2, 1};
    static constexpr int kRowStep[] = {8, 8, 8, 4, 4, 2, 2};

    size_t pass_row_len(int pass) const {
        const size_t pixels = static_cast<size_t>((xsize_ + kOffset[pass]) / kColStep[pass]);
        return (pixels * mode_.bits + 7) / 8;
    }

    void unfilter() {
        uint8_t* row = buffer_.data();
        const uint8_t* prev = previous_.data();
        const size_t bpp = (mode_.bits + 7) / 8;
        switch (row[0]) {
            case 0: break;
            case 1:
                for (size_t i = bpp + 1; i <= row_len_; ++i) row[i] += row[i - bpp];
                break;
            case 2:
                for (size_t i = 1; i <= row_len_; ++i) row[i] += prev[i];
                break;
            case 3: {
                size_t i = 1;
                for (; i <= bpp && i <= row_len_; ++i) row[i] += prev[i] / 2;
                for (; i <= row_len_; ++i) row[i] = static_cast<uint8_t>(row[i] + (row[i - bpp] + prev[i]) / 2);
                break;
            }
            case 4: {
                size_t i = 1;
                for (; i <= bpp && i <= row_len_; ++i) row[i] += prev[i];
                for (; i <= row_len_; ++i) {
                    const int a = row[i - bpp], b = prev[i], c = prev[i - bpp];
                    const int pa = std::abs(b - c), pb = std::abs(a - c), pc = std::abs(a + b - 2 * c);
                    row[i] = static_cast<uint8_t>(row[i] + ((pa <= pb && pa <= pc) ? a : (pb <= pc) ? b : c));
                }
                break;
            }
            default: corrupt("unknown PNG filter type " + std::to_string(row[0]));
        }
    }

    void store_row() {
        const uint8_t* pixels = buffer_.data() + 1;
        if (!interlaced_) {
            uint8_t* dst = image_->row(y_ + yoff_) + static_cast<size_t>(xoff_) * 3;
            unpack_png_pixels(mode_.raw, pixels, static_cast<size_t>(xsize_), palette_, dst);
            ++y_;
            return;
        }
        // Pillow writes interlaced rows without the frame offset, pixel by pixel.
        int col = kStartCol[pass_];
        uint8_t* row = image_->row(y_);
        if (mode_.bits >= 8) {
            const size_t step = mode_.bits / 8;
            for (size_t i = 0; i < row_len_; i += step, col += kColStep[pass_]) {
                unpack_png_pixels(mode_.raw, pixels + i, 1, palette_, row + static_cast<size_t>(col) * 3);
            }
        } else {
            const size_t row_bits = static_cast<size_t>((xsize_ + kOffset[pass_]) / kColStep[pass_]) * mode_.bits;
            for (size_t i = 0; i < row_bits; i += mode_.bits, col += kColStep[pass_]) {
                const uint8_t byte = static_cast<uint8_t>(pixels[i / 8] << (i % 8));
                unpack_png_pixels(mode_.raw, &byte, 1, palette_, row + static_cast<size_t>(col) * 3);
            }
        }
        y_ += kRowStep[pass_];
        while (y_ >= ysize_ || row_len_ == 0) {
            if (++pass_ == 7) {
                y_ = ysize_;
                break;
            }
            y_ = kStartRow[pass_];
            row_len_ = pass_row_len(pass_);
            std::fill(buffer_.begin(), buffer_.end(), 0);  // becomes `previous`: new pass, no row above
        }
    }

    RgbImage* image_;
    PngMode mode_;
    const Palette& palette_;
    bool interlaced_;
    int xoff_, yoff_, xsize_, ysize_;
    size_t bytes_;
    Bytes buffer_, previous_;
    z_stream zs_{};
    size_t row_len_ = 0;
    size_t last_output_ = 0;
    int y_ = 0;
    int pass_ = 0;
};

struct PngChunkHeader {
    std::string id;
    uint32_t length;
    size_t data;  // offset of the chunk data
};

struct TextValue {
    Bytes value;
    bool is_str;  // Pillow stores str (not bytes) for this info key
};

// PngImageFile: the chunk walk of _open (up to the image data, CRC-checked), load() (image data
// through load_read), load_end() (chunks after the image data) and the info keys getexif reads.
class PngFile {
public:
    explicit PngFile(const Bytes& file) : d_(file) {}

    void open() {
        size_t pos = 8;
        for (;;) {
            const PngChunkHeader c = header_at(pos, /*lenient=*/false).value();
            if (c.id == "IDAT" || c.id == "fdAT") {
                size_t data = c.data;
                uint32_t length = c.length;
                if (c.id == "fdAT") {
                    fdat_sequence(c);
                    data += 4;
                    length -= 4;
                }
                start_image_data(data, length);
                return;
            }
            if (c.id == "IEND") corrupt("no image data before IEND");
            const Bytes payload = safe_read(c.data, c.length);
            handle_chunk(c.id, payload);
            // ChunkStream.crc: every chunk before the image data is checksummed.
            if (c.data + c.length + 4 > d_.size()) corrupt("broken PNG file (incomplete checksum)");
            uLong crc = crc32(0, reinterpret_cast<const Bytef*>(c.id.data()), 4);
            crc = crc32(crc, payload.data(), static_cast<uInt>(payload.size()));
            if (crc != be32(&d_[c.data + c.length])) corrupt("broken PNG file (bad header checksum in " + c.id + ")");
            pos = c.data + c.length + 4;
        }
    }

    bool has_mode() const { return mode_.has_value(); }
    uint32_t width() const { return width_; }
    uint32_t height() const { return height_; }

    RgbImage load() {
        if (!mode_) corrupt("unsupported PNG bit depth and colour type");
        Palette palette{};  // Pillow's palette: PLTE entries, then black
        if (is_palette(mode_->raw)) {
            if (palette_bytes_.size() / 3 > 256) corrupt("invalid palette size");
            std::copy_n(palette_bytes_.begin(), palette_bytes_.size() / 3 * 3, palette.begin());
        }
        // ImageFile.load: a new image (black, or palette entry 0) and the tile's extents.
        RgbImage image(static_cast<int>(width_), static_cast<int>(height_));
        if (is_palette(mode_->raw)) {
            for (size_t i = 0; i < image.pixels.size(); i += 3) std::memcpy(&image.pixels[i], &palette[0], 3);
        }
        int64_t x0 = 0, y0 = 0, xsize = width_, ysize = height_;
        if (bbox_ && !((*bbox_)[0] == 0 && (*bbox_)[2] == 0)) {
            x0 = (*bbox_)[0];
            y0 = (*bbox_)[1];
            xsize = (*bbox_)[2] - x0;
            ysize = (*bbox_)[3] - y0;
        }
        if (xsize <= 0 || ysize <= 0) corrupt("Size cannot be negative");
        if (x0 + xsize > width_ || y0 + ysize > height_) corrupt("Tile cannot extend outside image");

        PngRowDecoder decoder(&image, *mode_, palette, interlaced_, static_cast<int>(x0), static_cast<int>(y0),
                              static_cast<int>(xsize), static_cast<int>(ysize));
        // load_read: at most MAXBLOCK bytes per call, never across a chunk; later IDAT/fdAT chunks
        // continue the data, any other chunk before the last row means the file is truncated.
        size_t at = image_data_, left = image_data_left_, chunk_end = at + left;
        for (;;) {
            while (left == 0) {
                const std::optional<PngChunkHeader> c = header_at(chunk_end + 4, /*lenient=*/false);
                if (c->id != "IDAT" && c->id != "DDAT" && c->id != "fdAT") truncated();
                at = c->data;
                left = c->length;
                if (c->id == "fdAT") {
                    fdat_sequence(*c);
                    at += 4;
                    left -= 4;
                }
                chunk_end = at + left;
            }
            const size_t block = std::min(left, kMaxBlock);
            const size_t available = at < d_.size() ? std::min(block, d_.size() - at) : 0;
            if (available == 0) truncated();
            if (decoder.decode(&d_[at], available) == PngRowDecoder::Status::kDone) break;
            if (available < block) truncated();
            at += block;
            left -= block;
        }
        load_end(chunk_end + 4);
        return image;
    }

    // Image.getexif for a PngImageFile after load(): eXIf / "exif" / "Raw profile type exif",
    // then the XMP packet when there is no Orientation tag.
    int orientation() const {
        ExifOrientation exif;
        const auto exif_info = info_.find("exif");
        const auto raw_profile = info_.find("Raw profile type exif");
        if (exif_info != info_.end()) {
            // A zTXt/iTXt "exif" keyword gives a str, which Exif.load cannot take.
            if (exif_info->second.is_str) corrupt("EXIF data is text");
            exif = exif_or_corrupt(exif_info->second.value);
        } else if (raw_profile != info_.end()) {
            exif = exif_or_corrupt(raw_profile_bytes(raw_profile->second.value));
        }
        if (exif.present) return exif.value;
        const auto xmp_text = info_.find("XML:com.adobe.xmp");
        const auto xmp = info_.find("xmp");
        const Bytes* packet = nullptr;
        if (xmp_text != info_.end() && !xmp_text->second.value.empty()) {
            packet = &xmp_text->second.value;
        } else if (xmp != info_.end() && !xmp->second.value.empty()) {
            packet = &xmp->second.value;
        }
        return packet != nullptr ? xmp_orientation(*packet).value_or(0) : 0;
    }

private:
    static ExifOrientation exif_or_corrupt(const Bytes& data) {
        try {
            return read_exif_orientation(data.data(), data.size());
        } catch (const ExifHeaderError& e) {
            corrupt(e.what());
        }
    }

    // bytes.fromhex("".join(text.split("\n")[3:])): ImageMagick's "\nexif\n  size\nhex...".
    static Bytes raw_profile_bytes(const Bytes& text) {
        size_t start = 0;
        for (int lines = 0; lines < 3; ++lines) {
            while (start < text.size() && text[start] != '\n') ++start;
            if (start == text.size()) return {};
            ++start;
        }
        auto hex = [](uint8_t c) -> int {
            if (c >= '0' && c <= '9') return c - '0';
            if (c >= 'a' && c <= 'f') return c - 'a' + 10;
            if (c >= 'A' && c <= 'F') return c - 'A' + 10;
            return -1;
        };
        auto space = [](uint8_t c) { return c == ' ' || (c >= '\t' && c <= '\r'); };
        Bytes out;
        size_t i = start;
        for (;;) {
            while (i < text.size() && (text[i] == '\n' || space(text[i]))) ++i;
            if (i == text.size()) break;
            const int hi = hex(text[i]);
            const int lo = i + 1 < text.size() && text[i + 1] != '\n' ? hex(text[i + 1]) : -1;
            if (hi < 0 || lo < 0) corrupt("non-hexadecimal number in Raw profile type exif");
            out.push_back(static_cast<uint8_t>(hi << 4 | lo));
            i += 2;
        }
        return out;
    }

    // ChunkStream.read: an 8-byte header with a \w\w\w\w name. Pillow's _open and load_read fail on
    // a short or bad header; load_end (lenient) just stops.
    std::optional<PngChunkHeader> header_at(size_t pos, bool lenient) const {
        if (pos + 8 > d_.size()) {
            if (lenient) return std::nullopt;
            truncated();
        }
        PngChunkHeader c{std::string(reinterpret_cast<const char*>(&d_[pos + 4]), 4), be32(&d_[pos]), pos + 8};
        for (char ch : c.id) {
            if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '_') {
                if (lenient) return std::nullopt;
                corrupt("broken PNG file (bad chunk name)");
            }
        }
        return c;
    }

    // ImageFile._safe_read: the whole chunk or an error.
    Bytes safe_read(size_t at, size_t length) const {
        if (at > d_.size() || length > d_.size() - at) corrupt("Truncated File Read");
        return Bytes(d_.begin() + static_cast<ptrdiff_t>(at), d_.begin() + static_cast<ptrdiff_t>(at + length));
    }

    // chunk_fdAT: a frame data chunk must continue the APNG sequence numbers.
    void fdat_sequence(const PngChunkHeader& c) {
        if (c.length < 4) corrupt("APNG contains truncated fDAT chunk");
        const Bytes seq = safe_read(c.data, 4);
        if (!seq_num_ || *seq_num_ != static_cast<int64_t>(be32(seq.data())) - 1) {
            corrupt("APNG contains frame sequence errors");
        }
        seq_num_ = be32(seq.data());
    }

    // chunk_IDAT: the image data starts here, inside the first frame's fcTL region if one came first.
    void start_image_data(size_t data, uint32_t length) {
        if (!bbox_ && n_frames_) default_image_ = true;
        image_data_ = data;
        image_data_left_ = length;
        // n_frames = acTL's count, plus the default image when it is not the first frame.
        const uint64_t frames = (n_frames_ ? *n_frames_ : 1) + (n_frames_ && default_image_ ? 1 : 0);
        animated_ = frames > 1;
    }

    void set_info(const std::string& key, Bytes value, bool is_str) {
        static const char* const kKeys[] = {"exif", "Raw profile type exif", "XML:com.adobe.xmp", "xmp"};
        for (const char* k : kKeys) {
            if (key == k) info_[key] = TextValue{std::move(value), is_str};
        }
    }

    Bytes decompress_text(const Bytes& data, size_t from, bool* zlib_error) const {
        Bytes out;
        const Inflated r = safe_zlib_decompress(data.data() + from, data.size() - from, &out);
        if (r == Inflated::kTooLarge) corrupt("Decompressed data too large for PngImagePlugin.MAX_TEXT_CHUNK");
        *zlib_error = r == Inflated::kZlibError;
        return out;
    }

    // The PngStream.chunk_* handlers: what they store, and when they raise.
    void handle_chunk(const std::string& id, const Bytes& s) {
        const size_t n = s.size();
        auto need = [&](size_t min_length, const char* name) {
            if (n < min_length) corrupt(std::string("Truncated ") + name + " chunk");
        };
        if (id == "IHDR") {
            need(13, "IHDR");
            width_ = be32(&s[0]);
            height_ = be32(&s[4]);
            if (auto mode = png_mode(s[8], s[9])) mode_ = mode;
            interlaced_ = interlaced_ || s[12] != 0;
            if (s[11] != 0) corrupt("unknown filter category");
        } else if (id == "PLTE") {
            if (mode_ && is_palette(mode_->raw)) palette_bytes_ = s;
        } else if (id == "tRNS") {
            if (mode_ && !is_palette(mode_->raw) && mode_->raw != PngRaw::kLA && mode_->raw != PngRaw::kLA16B &&
                mode_->raw != PngRaw::kRGBA && mode_->raw != PngRaw::kRGBA16B) {
                const bool rgb = mode_->raw == PngRaw::kRGB || mode_->raw == PngRaw::kRGB16B;
                need(rgb ? 6 : 2, "tRNS");
            }
        } else if (id == "gAMA") {
            need(4, "gAMA");
        } else if (id == "cHRM") {
            need(32, "cHRM");
        } else if (id == "sRGB") {
            need(1, "sRGB");
        } else if (id == "pHYs") {
            need(9, "pHYs");
        } else if (id == "iCCP") {
            const size_t nul = std::find(s.begin(), s.end(), 0) - s.begin();
            const size_t method = nul == n ? 0 : nul + 1;  // s.find() == -1 reads s[0]
            if (method >= n) corrupt("broken iCCP chunk");
            if (s[method] != 0) corrupt("Unknown compression method in iCCP chunk");
            bool ignored;
            decompress_text(s, method + 1, &ignored);
        } else if (id == "tEXt") {
            const size_t nul = std::find(s.begin(), s.end(), 0) - s.begin();
            const std::string key(s.begin(), s.begin() + static_cast<ptrdiff_t>(nul));
            Bytes value = nul < n ? Bytes(s.begin() + static_cast<ptrdiff_t>(nul) + 1, s.end()) : Bytes{};
            if (!key.empty()) set_info(key, std::move(value), key != "exif");
        } else if (id == "zTXt") {
            const size_t nul = std::find(s.begin(), s.end(), 0) - s.begin();
            const std::string key(s.begin(), s.begin() + static_cast<ptrdiff_t>(nul));
            const size_t method = nul + 1;
            if (method < n && s[method] != 0) corrupt("Unknown compression method in zTXt chunk");
            Bytes value;
            if (method < n) {
                bool zlib_error;
                value = decompress_text(s, method + 1, &zlib_error);
                if (zlib_error) value.clear();
            }
            if (!key.empty()) set_info(key, std::move(value), true);
        } else if (id == "iTXt") {
            handle_itxt(s);
        } else if (id == "eXIf") {
            Bytes value = {'E', 'x', 'i', 'f', 0, 0};
            value.insert(value.end(), s.begin(), s.end());
            set_info("exif", std::move(value), false);
        } else if (id == "acTL") {
            need(8, "acTL");
            const uint32_t frames = be32(&s[0]);
            if (n_frames_) {
                n_frames_.reset();  // a second acTL: "Invalid APNG", use the default image
            } else if (frames != 0 && frames <= 0x80000000u) {
                n_frames_ = frames;
            }
        } else if (id == "fcTL") {
            if (n < 26) corrupt("APNG contains truncated fcTL chunk");
            const int64_t seq = be32(&s[0]);
            if ((!seq_num_ && seq != 0) || (seq_num_ && *seq_num_ != seq - 1)) {
                corrupt("APNG contains frame sequence errors");
            }
            seq_num_ = seq;
            const int64_t w = be32(&s[4]), h = be32(&s[8]), px = be32(&s[12]), py = be32(&s[16]);
            if (px + w > width_ || py + h > height_) corrupt("APNG contains invalid frames");
            bbox_ = std::array<int64_t, 4>{px, py, px + w, py + h};
        }
    }

    void handle_itxt(const Bytes& s) {
        const auto nul0 = std::find(s.begin(), s.end(), 0);
        if (nul0 == s.end()) return;
        const std::string key(s.begin(), nul0);
        if (s.end() - (nul0 + 1) < 2) return;
        const uint8_t compressed = nul0[1], method = nul0[2];
        const auto lang = nul0 + 3;
        const auto nul1 = std::find(lang, s.end(), 0);
        if (nul1 == s.end()) return;
        const auto nul2 = std::find(nul1 + 1, s.end(), 0);
        if (nul2 == s.end()) return;
        Bytes value(nul2 + 1, s.end());
        if (compressed != 0) {
            if (method != 0) return;
            bool zlib_error;
            value = decompress_text(value, 0, &zlib_error);
            if (zlib_error) return;
        }
        if (key == "XML:com.adobe.xmp") set_info("xmp", value, false);
        if (!valid_utf8(&*lang, static_cast<size_t>(nul1 - lang)) ||
            !valid_utf8(&*(nul1 + 1), static_cast<size_t>(nul2 - nul1 - 1)) ||
            !valid_utf8(value.data(), value.size())) {
            return;
        }
        set_info(key, std::move(value), true);
    }

    // load_end: the chunks after the image data, without CRC checks, up to IEND (or the next
    // frame's fcTL in an animated file); a short or bad chunk header ends the walk quietly.
    void load_end(size_t pos) {
        for (;;) {
            const std::optional<PngChunkHeader> c = header_at(pos, /*lenient=*/true);
            if (!c || c->id == "IEND") return;
            if (c->id == "fcTL" && animated_) return;
            if (c->id == "IDAT" || c->id == "fdAT") {
                uint32_t length = c->length;
                if (c->id == "fdAT") {
                    fdat_sequence(*c);
                    length -= 4;
                    safe_read(c->data + 4, length);
                } else {
                    safe_read(c->data, length);
                }
            } else {
                handle_chunk(c->id, safe_read(c->data, c->length));
            }
            pos = c->data + c->length + 4;
        }
    }

    const Bytes& d_;
    uint32_t width_ = 0, height_ = 0;
    std::optional<PngMode> mode_;
    bool interlaced_ = false;
    Bytes palette_bytes_;
    std::optional<uint32_t> n_frames_;
    std::optional<int64_t> seq_num_;
    std::optional<std::array<int64_t, 4>> bbox_;
    bool default_image_ = false;
    bool animated_ = false;
    size_t image_data_ = 0;
    size_t image_data_left_ = 0;
    std::map<std::string, TextValue> info_;
};

// ---------------------------------------------------------------------------------------------
// JPEG (JpegImagePlugin.JpegImageFile._open and libImaging/JpegDecode.c)

struct JpegHeader {
    int width = 0, height = 0, layers = 0;
    bool have_sof = false, have_sos = false;
    std::optional<Bytes> exif;  // APP1 "Exif\0\0" segments, concatenated
    std::optional<Bytes> xmp;
    bool has_dpi = false;       // a JFIF APP0 with density unit 1 or 2
};

// The marker walk of JpegImageFile._open, with the checks that make Pillow refuse the file.
JpegHeader scan_jpeg(const Bytes& d) {
    JpegHeader h;
    size_t pos = 3;  // after FF D8 FF; the last FF starts the first marker
    std::vector<Bytes> icc;
    auto segment = [&]() -> Bytes {
        if (pos + 2 > d.size()) corrupt("JPEG marker segment is truncated");
        const int64_t n = static_cast<int64_t>(be16(&d[pos])) - 2;
        pos += 2;
        if (n <= 0) return {};
        if (static_cast<size_t>(n) > d.size() - pos) corrupt("Truncated File Read");
        Bytes s(d.begin() + static_cast<ptrdiff_t>(pos), d.begin() + static_cast<ptrdiff_t>(pos) + n);
        pos += static_cast<size_t>(n);
        return s;
    };
    int current = 0xFF;
    bool have_byte = true;
    while (have_byte) {
        if (current != 0xFF) {  // junk between markers
            have_byte = pos < d.size();
            if (have_byte) current = d[pos++];
            continue;
        }
        if (pos >= d.size()) break;
        const int marker = 0xFF00 | d[pos++];
        if (marker >= 0xFFC0 && marker <= 0xFFFE) {
            const bool sof = (marker >= 0xFFC0 && marker <= 0xFFCF && marker != 0xFFC4 && marker != 0xFFC8 &&
                              marker != 0xFFCC) ||
                             marker == 0xFFDE;
            const bool skip = marker == 0xFFC4 || marker == 0xFFCC || marker == 0xFFDA || marker == 0xFFDC ||
                              marker == 0xFFDD || marker == 0xFFDF || marker == 0xFFFE;
            if (marker >= 0xFFE0 && marker <= 0xFFEF) {
                const Bytes s = segment();
                const uint8_t* p = s.data();
                const size_t n = s.size();
                if (marker == 0xFFE0 && starts_with(p, n, "JFIF", 4)) {
                    if (n < 7) corrupt("JFIF segment is truncated");
                    if (n >= 12 && (s[7] == 1 || s[7] == 2)) h.has_dpi = true;
                } else if (marker == 0xFFE1 && starts_with(p, n, "Exif\0\0", 6)) {
                    if (h.exif) {
                        h.exif->insert(h.exif->end(), s.begin() + 6, s.end());
                    } else {
                        h.exif = s;
                    }
                } else if (marker == 0xFFE1 && starts_with(p, n, "http://ns.adobe.com/xap/1.0/\0", 29)) {
                    h.xmp = Bytes(s.begin() + 29, s.end());
                } else if (marker == 0xFFE2 && starts_with(p, n, "ICC_PROFILE\0", 12)) {
                    icc.push_back(s);
                } else if (marker == 0xFFED && starts_with(p, n, "Photoshop 3.0\0", 14)) {
                    // Pillow's resource walk stops quietly on a short field (struct.error),
                    // but a missing name length is an IndexError that fails the open.
                    size_t off = 14;
                    while (off + 4 <= n && std::memcmp(p + off, "8BIM", 4) == 0) {
                        off += 4;
                        if (off + 2 > n) break;
                        const uint32_t code = be16(p + off);
                        off += 2;
                        if (off >= n) corrupt("Photoshop resource block is truncated");
                        off += 1 + p[off];
                        off += off & 1;
                        if (off + 4 > n) break;
                        const uint64_t size = be32(p + off);
                        off += 4;
                        if (code == 0x03ED && std::min<uint64_t>(size, off <= n ? n - off : 0) < 14) break;
                        off += size;
                        off += off & 1;
                    }
                } else if (marker == 0xFFEE && starts_with(p, n, "Adobe", 5)) {
                    if (n < 7) corrupt("Adobe segment is truncated");
                }
            } else if (sof) {
                const Bytes s = segment();
                if (s.size() < 5) corrupt("SOF segment is truncated");
                h.height = static_cast<int>(be16(&s[1]));
                h.width = static_cast<int>(be16(&s[3]));
                if (s[0] != 8) corrupt("cannot handle " + std::to_string(s[0]) + "-bit layers");
                if (s.size() < 6) corrupt("SOF segment is truncated");
                h.layers = s[5];
                if (h.layers != 1 && h.layers != 3 && h.layers != 4) {
                    corrupt("cannot handle " + std::to_string(h.layers) + "-layer images");
                }
                h.have_sof = true;
                if (!icc.empty()) {
                    std::sort(icc.begin(), icc.end());
                    if (icc[0].size() < 14) corrupt("ICC profile segment is truncated");
                    icc.clear();
                }
            } else if (marker == 0xFFDB) {
                Bytes s = segment();
                size_t off = 0;
                while (off < s.size()) {
                    const size_t length = 1 + (s[off] >> 4 == 0 ? 1 : 2) * 64;
                    if (s.size() - off < length) corrupt("bad quantization table marker");
                    off += length;
                }
            } else if (skip) {
                segment();
            }
            if (marker == 0xFFDA) {
                h.have_sos = true;
                break;
            }
            have_byte = pos < d.size();
            if (have_byte) current = d[pos++];
        } else if (marker == 0xFFFF) {
            current = 0xFF;
        } else if (marker == 0xFF00) {
            have_byte = pos < d.size();
            if (have_byte) current = d[pos++];
        } else {
            corrupt("no marker found");
        }
    }
    if (!h.have_sof) corrupt("no JPEG frame header");
    return h;
}

// JpegImageFile's orientation: in _open, _read_dpi_from_exif already calls getexif() when the
// file has EXIF but no JFIF dpi, and swallows a bad TIFF header (leaving no tags and skipping the
// XMP fallback); otherwise exif_transpose's own getexif() raises it.
int jpeg_orientation(const JpegHeader& h) {
    ExifOrientation exif;
    if (h.exif) {
        try {
            exif = read_exif_orientation(h.exif->data(), h.exif->size());
        } catch (const ExifHeaderError& e) {
            if (h.has_dpi) corrupt(e.what());
            return 0;
        }
    }
    if (exif.present) return exif.value;
    return h.xmp ? xmp_orientation(*h.xmp).value_or(0) : 0;
}

struct JpegErrorManager {
    jpeg_error_mgr pub;
    std::jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
};

void jpeg_fail(j_common_ptr cinfo) {
    auto* err = reinterpret_cast<JpegErrorManager*>(cinfo->err);
    (*cinfo->err->format_message)(cinfo, err->message);
    std::longjmp(err->jump, 1);
}

void jpeg_quiet(j_common_ptr) {}
void jpeg_source_noop(j_decompress_ptr) {}

// Pillow feeds libjpeg through a suspending source: at the end of the data libjpeg suspends (and
// Pillow reports a truncated file) instead of inventing an EOI marker as jpeg_mem_src does.
boolean jpeg_suspend(j_decompress_ptr) { return FALSE; }

void jpeg_skip(j_decompress_ptr cinfo, long num_bytes) {
    jpeg_source_mgr* src = cinfo->src;
    if (num_bytes <= 0) return;
    const size_t n = std::min(static_cast<size_t>(num_bytes), src->bytes_in_buffer);
    src->next_input_byte += n;
    src->bytes_in_buffer -= n;
}

// Pillow unpacks 4-component JPEG as "CMYK;I" (Adobe's inverted CMYK, whatever the markers say),
// then converts with libImaging/Convert.c cmyk2rgb.
void cmyk_row_to_rgb(const uint8_t* src, int width, uint8_t* dst) {
    for (int x = 0; x < width; ++x, src += 4, dst += 3) {
        const int nk = src[3];  // 255 - (255 - k)
        for (int c = 0; c < 3; ++c) {
            const int tmp = (255 - src[c]) * nk + 128;  // MULDIV255(c, nk)
            dst[c] = static_cast<uint8_t>(std::clamp(nk - (((tmp >> 8) + tmp) >> 8), 0, 255));
        }
    }
}

// libjpeg set up as JpegDecode.c: default decoder settings, the colour space libjpeg infers from
// the markers, output grey/RGB/CMYK by the number of components.
RgbImage decode_jpeg(const Bytes& data, const JpegHeader& h) {
    RgbImage image(h.width, h.height);
    Bytes row(static_cast<size_t>(h.width) * 4);
    jpeg_decompress_struct cinfo{};
    JpegErrorManager err{};
    jpeg_source_mgr source{};
    cinfo.err = jpeg_std_error(&err.pub);
    err.pub.error_exit = jpeg_fail;
    err.pub.output_message = jpeg_quiet;
    if (setjmp(err.jump)) {
        jpeg_destroy_decompress(&cinfo);
        corrupt(std::string("libjpeg: ") + err.message);
    }
    jpeg_create_decompress(&cinfo);
    source.init_source = jpeg_source_noop;
    source.fill_input_buffer = jpeg_suspend;
    source.skip_input_data = jpeg_skip;
    source.resync_to_restart = jpeg_resync_to_restart;
    source.term_source = jpeg_source_noop;
    source.next_input_byte = data.data();
    source.bytes_in_buffer = data.size();
    cinfo.src = &source;

    int header;
    do {
        header = jpeg_read_header(&cinfo, FALSE);
    } while (header == JPEG_HEADER_TABLES_ONLY);
    const char* failure = nullptr;
    if (header == JPEG_SUSPENDED) failure = "image file is truncated";
    if (failure == nullptr) {
        cinfo.out_color_space = h.layers == 1 ? JCS_GRAYSCALE : h.layers == 3 ? JCS_RGB : JCS_CMYK;
        if (!jpeg_start_decompress(&cinfo)) failure = "image file is truncated";
    }
    if (failure == nullptr && (cinfo.output_width != static_cast<JDIMENSION>(h.width) ||
                               cinfo.output_height != static_cast<JDIMENSION>(h.height) ||
                               cinfo.output_components != h.layers)) {
        failure = "the JPEG frame header disagrees with the decoder";
    }
    while (failure == nullptr && cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW rows[1] = {row.data()};
        if (jpeg_read_scanlines(&cinfo, rows, 1) != 1) {
            failure = "image file is truncated";
            break;
        }
        uint8_t* dst = image.row(static_cast<int>(cinfo.output_scanline) - 1);
        if (h.layers == 3) {
            std::memcpy(dst, row.data(), static_cast<size_t>(h.width) * 3);
        } else if (h.layers == 1) {
            for (int x = 0; x < h.width; ++x) dst[3 * x] = dst[3 * x + 1] = dst[3 * x + 2] = row[x];
        } else {
            cmyk_row_to_rgb(row.data(), h.width, dst);
        }
    }
    // Suspending here (no EOI) is fine once every row is decoded, as in JpegDecode.c; an error is not.
    // libjpeg-turbo 3 (Pillow's) rejects a second SOF marker before reading its length, 2.1 only
    // after: a SOF cut off by the end of the file must fail here too.
    if (failure == nullptr && !jpeg_finish_decompress(&cinfo)) {
        const int m = cinfo.unread_marker;
        if (m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC) {
            failure = "libjpeg: Invalid JPEG file structure: two SOF markers";
        }
    }
    jpeg_destroy_decompress(&cinfo);
    if (failure != nullptr) corrupt(failure);
    return image;
}

// ---------------------------------------------------------------------------------------------

void check_size(const std::string& path, int64_t width, int64_t height, int64_t max_pixels) {
    // Image._decompression_bomb_check counts max(1, w) * max(1, h); preprocessing turns the warning
    // (more than MAX_IMAGE_PIXELS) into an error.
    const int64_t pixels = std::max<int64_t>(1, width) * std::max<int64_t>(1, height);
    if (max_pixels > 0 && pixels > max_pixels) {
        throw InputError("image " + path + " has more than " + with_thousands(max_pixels) +
                         " pixels, the limit against decompression bombs; downscale it first");
    }
    if (width == 0 || height == 0) {
        throw InputError("image " + path + " has no pixels (" + std::to_string(width) + "x" +
                         std::to_string(height) + ")");
    }
}

RgbImage load_png(const std::string& path, const Bytes& data, int64_t max_pixels) {
    PngFile png(data);
    png.open();
    check_size(path, png.width(), png.height(), max_pixels);
    if (!png.has_mode()) corrupt("unsupported PNG bit depth and colour type");
    if (png.width() > 0x7fffffff || png.height() > 0x7fffffff) corrupt("PNG dimensions out of range");
    RgbImage image = png.load();
    return apply_orientation(std::move(image), png.orientation());
}

RgbImage load_jpeg(const std::string& path, const Bytes& data, int64_t max_pixels) {
    const JpegHeader header = scan_jpeg(data);
    check_size(path, header.width, header.height, max_pixels);
    if (!header.have_sos) corrupt("no image data (no start of scan)");
    const int orientation = jpeg_orientation(header);
    return apply_orientation(decode_jpeg(data, header), orientation);
}

}  // namespace

RgbImage load_image(const std::string& path, int64_t max_pixels) {
    const Bytes data = read_file(path);
    const bool png = starts_with(data.data(), data.size(), "\x89PNG\r\n\x1a\n", 8);
    const bool jpeg = starts_with(data.data(), data.size(), "\xff\xd8\xff", 3);
    if (!png && !jpeg) {
        const char* format = other_image_format(data);
        const std::string what = format != nullptr ? "image " + path + " is " + format + " file"
                                                   : path + " is not a PNG or JPEG image";
        throw InputError(what + "; the native engine reads PNG and JPEG only: convert it to PNG, or use "
                                "inference.py without --engine native (ONNX Runtime)");
    }
    try {
        return png ? load_png(path, data, max_pixels) : load_jpeg(path, data, max_pixels);
    } catch (const CorruptImage& e) {
        throw InputError("image " + path + " is truncated or corrupt (" + e.what() +
                         "); re-export or re-download it");
    } catch (const std::bad_alloc&) {
        throw InputError("image " + path + " is too large to decode in memory; downscale it first");
    } catch (const std::length_error&) {
        throw InputError("image " + path + " is too large to decode in memory; downscale it first");
    }
}

}  // namespace p2s
