// Image files -> 8-bit RGB, equal to preprocessing.load_image (Pillow open, EXIF orientation, RGB).
#pragma once

#include <cstdint>
#include <string>

#include "image.hpp"

namespace p2s {

// Decodes a PNG or JPEG file, applies its EXIF orientation and converts to RGB as Pillow's
// Image.convert("RGB") does. Throws InputError (message as in preprocessing.load_image) for a
// missing file, an unsupported format, a corrupt or truncated file, an image with no pixels, or one
// with more than max_pixels pixels (0 = no limit), checked before decoding.
RgbImage load_image(const std::string& path, int64_t max_pixels);

}  // namespace p2s
