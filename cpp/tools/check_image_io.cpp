// check_image_io: decodes an image with p2s::load_image for check_image_io.py.
//
//   check_image_io IMAGE OUT.ppm [MAX_PIXELS]   writes the RGB pixels as a binary PPM (exit 0), or
//                                               prints the error message (exit 2)
//   check_image_io --write-jpeg KIND W H SEED OUT
//                                               writes a noise JPEG with libjpeg, for what Pillow
//                                               cannot save: KIND is cmyk (Adobe marker),
//                                               cmyk-noadobe, ycck, rgb (no colour transform),
//                                               arith (arithmetic coding) or ycbcr-HxV (luma
//                                               sampling factors, e.g. ycbcr-1x2, ycbcr-4x1)
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <jpeglib.h>

#include "image_io.hpp"

namespace {

int write_jpeg(const std::string& kind, int width, int height, unsigned seed, const char* out_path) {
    const bool four = kind == "cmyk" || kind == "cmyk-noadobe" || kind == "ycck";
    const int components = four ? 4 : 3;
    std::mt19937 rng(seed);
    std::vector<uint8_t> pixels(static_cast<size_t>(width) * height * components);
    for (auto& v : pixels) v = static_cast<uint8_t>(rng());
    std::FILE* out = std::fopen(out_path, "wb");
    if (out == nullptr) return 1;
    jpeg_compress_struct cinfo{};
    jpeg_error_mgr err{};
    cinfo.err = jpeg_std_error(&err);
    jpeg_create_compress(&cinfo);
    jpeg_stdio_dest(&cinfo, out);
    cinfo.image_width = static_cast<JDIMENSION>(width);
    cinfo.image_height = static_cast<JDIMENSION>(height);
    cinfo.input_components = components;
    cinfo.in_color_space = four ? JCS_CMYK : JCS_RGB;
    jpeg_set_defaults(&cinfo);
    if (four) jpeg_set_colorspace(&cinfo, kind == "ycck" ? JCS_YCCK : JCS_CMYK);
    if (kind == "cmyk-noadobe") cinfo.write_Adobe_marker = FALSE;
    if (kind == "rgb") jpeg_set_colorspace(&cinfo, JCS_RGB);
    if (kind == "arith") cinfo.arith_code = TRUE;
    if (kind.rfind("ycbcr-", 0) == 0) {
        cinfo.comp_info[0].h_samp_factor = kind[6] - '0';
        cinfo.comp_info[0].v_samp_factor = kind[8] - '0';
    }
    jpeg_set_quality(&cinfo, 90, TRUE);
    jpeg_start_compress(&cinfo, TRUE);
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW row = pixels.data() + static_cast<size_t>(cinfo.next_scanline) * width * components;
        jpeg_write_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    return std::fclose(out) == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc == 7 && std::strcmp(argv[1], "--write-jpeg") == 0) {
        return write_jpeg(argv[2], std::atoi(argv[3]), std::atoi(argv[4]),
                          static_cast<unsigned>(std::atoi(argv[5])), argv[6]);
    }
    if (argc != 3 && argc != 4) {
        std::fprintf(stderr, "usage: %s IMAGE OUT.ppm [MAX_PIXELS]\n", argv[0]);
        return 1;
    }
    const int64_t max_pixels = argc == 4 ? std::strtoll(argv[3], nullptr, 10) : 100000000;
    p2s::RgbImage image;
    try {
        image = p2s::load_image(argv[1], max_pixels);
    } catch (const p2s::InputError& e) {
        std::printf("%s\n", e.what());
        return 2;
    }
    std::FILE* out = std::fopen(argv[2], "wb");
    if (out == nullptr) return 1;
    std::fprintf(out, "P6\n%d %d\n255\n", image.width, image.height);
    const bool ok = std::fwrite(image.pixels.data(), 1, image.pixels.size(), out) == image.pixels.size();
    return std::fclose(out) == 0 && ok ? 0 : 1;
}
