// Unit tests of p2s::load_image on small files built here (PNG byte by byte with zlib, JPEG with
// libjpeg). The expected pixels were computed once with Pillow 13 (np.asarray of
// preprocessing.load_image on the same bytes) and pasted in; cpp/tools/check_image_io.py checks the
// full parity against Pillow.
#include <cstdio>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <jpeglib.h>
#include <zlib.h>

#include "image_io.hpp"

namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<uint8_t>;

void put32(Bytes& out, uint32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<uint8_t>(v >> shift));
}

Bytes chunk(const std::string& type, const Bytes& data) {
    Bytes out;
    put32(out, static_cast<uint32_t>(data.size()));
    out.insert(out.end(), type.begin(), type.end());
    out.insert(out.end(), data.begin(), data.end());
    uLong crc = crc32(0, reinterpret_cast<const Bytef*>(type.data()), 4);
    crc = crc32(crc, data.data(), static_cast<uInt>(data.size()));
    put32(out, static_cast<uint32_t>(crc));
    return out;
}

// A PNG with one IDAT holding `raw` (filter bytes and packed rows) and `extra` chunks before it.
Bytes png(uint32_t width, uint32_t height, uint8_t bit_depth, uint8_t colour_type, const Bytes& raw,
          const Bytes& extra = {}, uint8_t interlace = 0) {
    Bytes out = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    Bytes ihdr;
    put32(ihdr, width);
    put32(ihdr, height);
    ihdr.insert(ihdr.end(), {bit_depth, colour_type, 0, 0, interlace});
    const Bytes header = chunk("IHDR", ihdr);
    out.insert(out.end(), header.begin(), header.end());
    out.insert(out.end(), extra.begin(), extra.end());
    uLongf size = compressBound(static_cast<uLong>(raw.size()));
    Bytes compressed(size);
    compress(compressed.data(), &size, raw.data(), static_cast<uLong>(raw.size()));
    compressed.resize(size);
    for (const Bytes& c : {chunk("IDAT", compressed), chunk("IEND", {})}) out.insert(out.end(), c.begin(), c.end());
    return out;
}

// Flat 8x8 blocks at quality 100 decode exactly: `pixels` holds `components` bytes per pixel.
Bytes jpeg(int width, int height, int components, const Bytes& pixels, const Bytes& exif = {}) {
    unsigned char* buffer = nullptr;
    unsigned long size = 0;
    jpeg_compress_struct cinfo{};
    jpeg_error_mgr err{};
    cinfo.err = jpeg_std_error(&err);
    jpeg_create_compress(&cinfo);
    jpeg_mem_dest(&cinfo, &buffer, &size);
    cinfo.image_width = static_cast<JDIMENSION>(width);
    cinfo.image_height = static_cast<JDIMENSION>(height);
    cinfo.input_components = components;
    cinfo.in_color_space = components == 1 ? JCS_GRAYSCALE : components == 3 ? JCS_RGB : JCS_CMYK;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, 100, TRUE);
    jpeg_start_compress(&cinfo, TRUE);
    if (!exif.empty()) jpeg_write_marker(&cinfo, JPEG_APP0 + 1, exif.data(), static_cast<unsigned>(exif.size()));
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW row = const_cast<uint8_t*>(pixels.data()) + static_cast<size_t>(cinfo.next_scanline) * width * components;
        jpeg_write_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    Bytes out(buffer, buffer + size);
    std::free(buffer);
    return out;
}

// "Exif\0\0" + a little-endian TIFF structure whose IFD0 holds only Orientation.
Bytes exif_orientation(uint16_t orientation, bool with_prefix) {
    Bytes out;
    if (with_prefix) out = {'E', 'x', 'i', 'f', 0, 0};
    const Bytes tiff = {'I', 'I', 0x2a, 0, 8, 0, 0, 0, 1, 0, 0x12, 0x01, 3, 0, 1, 0, 0, 0,
                        static_cast<uint8_t>(orientation), 0, 0, 0, 0, 0, 0, 0};
    out.insert(out.end(), tiff.begin(), tiff.end());
    return out;
}

class LoadImage : public ::testing::Test {
protected:
    void SetUp() override {
        dir_ = fs::temp_directory_path() /
               ("p2s_image_io_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "_" +
                ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::create_directories(dir_);
    }
    void TearDown() override { fs::remove_all(dir_); }

    std::string write(const std::string& name, const Bytes& data) {
        const fs::path path = dir_ / name;
        std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(data.data()),
                                                    static_cast<std::streamsize>(data.size()));
        return path.string();
    }

    static std::vector<int> pixels(const p2s::RgbImage& image) {
        return std::vector<int>(image.pixels.begin(), image.pixels.end());
    }

    // The error message of load_image, or "" when it succeeds.
    static std::string error_of(const std::string& path, int64_t max_pixels = 0) {
        try {
            p2s::load_image(path, max_pixels);
        } catch (const p2s::InputError& e) {
            return e.what();
        }
        return "";
    }

    fs::path dir_;
};

TEST_F(LoadImage, PaletteLooksUpEntriesAndIgnoresTransparency) {
    const Bytes plte = chunk("PLTE", {10, 20, 30, 40, 50, 60, 70, 80, 90});
    const Bytes trns = chunk("tRNS", {0, 128});
    Bytes extra = plte;
    extra.insert(extra.end(), trns.begin(), trns.end());
    // Index 7 is past the palette: Pillow gives black.
    const auto image = p2s::load_image(write("p.png", png(2, 2, 8, 3, {0, 0, 1, 0, 2, 7}, extra)), 0);
    ASSERT_EQ(image.width, 2);
    ASSERT_EQ(image.height, 2);
    EXPECT_EQ(pixels(image), (std::vector<int>{10, 20, 30, 40, 50, 60, 70, 80, 90, 0, 0, 0}));
}

TEST_F(LoadImage, SixteenBitGreyClipsAt255) {
    // Pillow opens it as "I;16"; convert("RGB") clips to 255 instead of keeping the high byte.
    const Bytes raw = {0, 0x00, 0x00, 0x00, 0xff, 0x01, 0x00, 0xff, 0xff};
    const auto image = p2s::load_image(write("g16.png", png(4, 1, 16, 0, raw)), 0);
    EXPECT_EQ(pixels(image), (std::vector<int>{0, 0, 0, 255, 255, 255, 255, 255, 255, 255, 255, 255}));
}

TEST_F(LoadImage, SixteenBitColourKeepsTheHighByte) {
    const auto image = p2s::load_image(write("rgb16.png", png(1, 1, 16, 2, {0, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc})), 0);
    EXPECT_EQ(pixels(image), (std::vector<int>{18, 86, 154}));
}

TEST_F(LoadImage, RgbaDropsAlphaWithoutCompositing) {
    const auto image = p2s::load_image(write("rgba.png", png(2, 1, 8, 6, {0, 1, 2, 3, 4, 250, 251, 252, 0})), 0);
    EXPECT_EQ(pixels(image), (std::vector<int>{1, 2, 3, 250, 251, 252}));
}

TEST_F(LoadImage, LowBitDepthGreyIsScaled) {
    const auto two = p2s::load_image(write("g2.png", png(4, 1, 2, 0, {0, 0b00011011})), 0);
    EXPECT_EQ(pixels(two), (std::vector<int>{0, 0, 0, 85, 85, 85, 170, 170, 170, 255, 255, 255}));
    const auto one = p2s::load_image(write("g1.png", png(10, 1, 1, 0, {0, 0b10110000, 0b01000000})), 0);
    EXPECT_EQ(pixels(one), (std::vector<int>{255, 255, 255, 0, 0, 0, 255, 255, 255, 255, 255, 255, 0, 0, 0,
                                             0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 255}));
}

TEST_F(LoadImage, Adam7InterlacedRowsLandInPlace) {
    // 3x3 grey v[y][x] = 30y + 10x, written pass by pass (passes 2 and 3 are empty at this size).
    const Bytes raw = {0, 0, 0, 20, 0, 60, 80, 0, 10, 0, 70, 0, 30, 40, 50};
    const auto image = p2s::load_image(write("adam7.png", png(3, 3, 8, 0, raw, {}, 1)), 0);
    EXPECT_EQ(pixels(image), (std::vector<int>{0, 0, 0, 10, 10, 10, 20, 20, 20, 30, 30, 30, 40, 40, 40,
                                               50, 50, 50, 60, 60, 60, 70, 70, 70, 80, 80, 80}));
}

TEST_F(LoadImage, FiltersAreUndone) {
    // Row 0 uses the Sub filter, row 1 Paeth.
    const Bytes raw = {1, 10, 20, 30, 5, 5, 5, 4, 1, 2, 3, 200, 100, 50};
    const auto image = p2s::load_image(write("filtered.png", png(2, 2, 8, 2, raw)), 0);
    EXPECT_EQ(pixels(image), (std::vector<int>{10, 20, 30, 15, 25, 35, 11, 22, 33, 215, 125, 85}));
}

TEST_F(LoadImage, PngExifOrientationRotates) {
    // 3x2 grey with EXIF orientation 6: exif_transpose rotates it to 2x3.
    const Bytes extra = chunk("eXIf", exif_orientation(6, false));
    const auto image = p2s::load_image(write("exif.png", png(3, 2, 8, 0, {0, 1, 2, 3, 0, 4, 5, 6}, extra)), 0);
    ASSERT_EQ(image.width, 2);
    ASSERT_EQ(image.height, 3);
    EXPECT_EQ(pixels(image), (std::vector<int>{4, 4, 4, 1, 1, 1, 5, 5, 5, 2, 2, 2, 6, 6, 6, 3, 3, 3}));
}

TEST_F(LoadImage, JpegGreyAndCmyk) {
    const auto grey = p2s::load_image(write("grey.jpg", jpeg(8, 8, 1, Bytes(64, 77))), 0);
    EXPECT_EQ(pixels(grey), std::vector<int>(8 * 8 * 3, 77));
    // Pillow reads 4-component JPEG as inverted CMYK, then cmyk2rgb: stored (10, 200, 30, 100) -> this.
    Bytes cmyk;
    for (int i = 0; i < 64; ++i) cmyk.insert(cmyk.end(), {10, 200, 30, 100});
    const auto rgb = p2s::load_image(write("cmyk.jpg", jpeg(8, 8, 4, cmyk)), 0);
    ASSERT_EQ(rgb.pixels.size(), 8u * 8 * 3);
    for (size_t i = 0; i < rgb.pixels.size(); i += 3) {
        ASSERT_EQ((std::vector<int>{rgb.pixels[i], rgb.pixels[i + 1], rgb.pixels[i + 2]}),
                  (std::vector<int>{4, 78, 12}));
    }
}

TEST_F(LoadImage, JpegExifOrientationRotates) {
    // 16x8 grey, left block 0 and right block 255, orientation 8 (ROTATE_90): 8x16, right block on top.
    Bytes grey(16 * 8);
    for (int y = 0; y < 8; ++y) {
        for (int x = 8; x < 16; ++x) grey[y * 16 + x] = 255;
    }
    const auto image = p2s::load_image(write("exif.jpg", jpeg(16, 8, 1, grey, exif_orientation(8, true))), 0);
    ASSERT_EQ(image.width, 8);
    ASSERT_EQ(image.height, 16);
    EXPECT_EQ(image.row(0)[0], 255);
    EXPECT_EQ(image.row(7)[7 * 3], 255);
    EXPECT_EQ(image.row(8)[0], 0);
    EXPECT_EQ(image.row(15)[7 * 3], 0);
}

TEST_F(LoadImage, MissingFile) {
    EXPECT_EQ(error_of((dir_ / "nope.png").string()),
              "image " + (dir_ / "nope.png").string() + " does not exist; check the path");
}

TEST_F(LoadImage, Directory) {
    EXPECT_NE(error_of(dir_.string()).find("is not a file"), std::string::npos);
}

TEST_F(LoadImage, EmptyFile) {
    EXPECT_NE(error_of(write("empty.png", {})).find("is empty"), std::string::npos);
}

TEST_F(LoadImage, GarbageBytes) {
    EXPECT_NE(error_of(write("junk.png", {'h', 'e', 'l', 'l', 'o', 0, 1, 2, 3})).find("is not a PNG or JPEG image"),
              std::string::npos);
}

TEST_F(LoadImage, TruncatedPng) {
    const Bytes data = png(2, 1, 8, 6, {0, 1, 2, 3, 4, 250, 251, 252, 0});
    const size_t idat = std::string(data.begin(), data.end()).find("IDAT");
    // Cut inside the deflate data: an error. Cut after it (zlib checksum, CRC, IEND): Pillow does
    // not need those bytes, so neither does load_image.
    EXPECT_NE(error_of(write("cut.png", Bytes(data.begin(), data.begin() + idat + 8))).find("is truncated or corrupt"),
              std::string::npos);
    EXPECT_EQ(error_of(write("tail.png", Bytes(data.begin(), data.end() - 20))), "");
}

TEST_F(LoadImage, TruncatedJpeg) {
    Bytes data = jpeg(16, 16, 3, Bytes(16 * 16 * 3, 90));
    data.resize(data.size() / 2);
    EXPECT_NE(error_of(write("cut.jpg", data)).find("is truncated or corrupt"), std::string::npos);
}

TEST_F(LoadImage, CorruptCrcBeforeImageData) {
    Bytes data = png(1, 1, 8, 0, {0, 5});
    data[29] ^= 0xff;  // IHDR checksum
    EXPECT_NE(error_of(write("crc.png", data)).find("is truncated or corrupt"), std::string::npos);
}

TEST_F(LoadImage, MorePixelsThanTheLimit) {
    const std::string path = write("g16.png", png(4, 1, 16, 0, Bytes(9, 0)));
    EXPECT_EQ(error_of(path, 3), "image " + path +
                                     " has more than 3 pixels, the limit against decompression bombs; "
                                     "downscale it first");
    EXPECT_EQ(error_of(path, 4), "");
    EXPECT_EQ(error_of(path, 0), "");  // 0: no limit
}

TEST_F(LoadImage, ZeroWidth) {
    EXPECT_NE(error_of(write("zero.png", png(0, 1, 8, 0, {0}))).find("has no pixels (0x1)"), std::string::npos);
}

TEST_F(LoadImage, GifIsUnsupported) {
    const std::string message = error_of(write("a.gif", {'G', 'I', 'F', '8', '9', 'a', 1, 0, 1, 0, 0, 0, 0}));
    EXPECT_NE(message.find("is a GIF file"), std::string::npos);
    EXPECT_NE(message.find("PNG and JPEG only"), std::string::npos);
}

}  // namespace
