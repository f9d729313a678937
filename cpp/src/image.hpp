// Shared types of the native engine: 8-bit RGB images (errors come from pix2struct/errors.hpp).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "pix2struct/errors.hpp"

namespace p2s {

// 8-bit RGB image, rows top to bottom, channels interleaved: pixels[(y * width + x) * 3 + c].
struct RgbImage {
    int width = 0;
    int height = 0;
    std::vector<uint8_t> pixels;

    RgbImage() = default;
    RgbImage(int w, int h, uint8_t fill = 0)
        : width(w), height(h), pixels(static_cast<size_t>(w) * h * 3, fill) {}
    uint8_t* row(int y) { return pixels.data() + static_cast<size_t>(y) * width * 3; }
    const uint8_t* row(int y) const { return pixels.data() + static_cast<size_t>(y) * width * 3; }
};

}  // namespace p2s
