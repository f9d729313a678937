// The question header drawn above the page, equal to Pillow's rendering (see header.cpp).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "image.hpp"

namespace p2s {

// UTF-8 -> code points; throws InputError on invalid UTF-8.
std::u32string utf8_to_u32(const std::string& text);

// Code points -> UTF-8.
std::string u32_to_utf8(const std::u32string& text);

// Python's str.isspace for one code point (what str.strip() removes).
bool py_isspace(char32_t c);

// Python's textwrap.TextWrapper(width=width).wrap(text).
std::vector<std::u32string> wrap_question(const std::u32string& text, int width);

// A TrueType font at a pixel size, as ImageFont.truetype(path, size, encoding="UTF-8").
class HeaderFont {
public:
    // Throws ModelFolderError if the file is missing or not a font FreeType can open.
    HeaderFont(const std::string& path, int size);
    ~HeaderFont();
    HeaderFont(const HeaderFont&) = delete;
    HeaderFont& operator=(const HeaderFont&) = delete;

    // Non-whitespace code points of text the font cannot draw, each once, in ascending order.
    std::vector<char32_t> missing_glyphs(const std::u32string& text) const;

    struct Impl;
    const Impl& impl() const { return *impl_; }

private:
    std::unique_ptr<Impl> impl_;
};

// Image.resize((width, height)) with Pillow's default filter (BICUBIC) on 8-bit RGB.
RgbImage resize_bicubic(const RgbImage& image, int width, int height);

// preprocessing.render_text: text wrapped at wrap_width characters, black on white, padded.
RgbImage render_text(const std::u32string& text, const HeaderFont& font, int wrap_width, int padding);

// preprocessing.render_header: the rendered question stacked above the page at a common width.
// Throws InputError when a wrapped question's header would be taller than the page.
RgbImage render_header(const RgbImage& page, const std::u32string& question, const HeaderFont& font,
                       int wrap_width, int padding);

}  // namespace p2s
