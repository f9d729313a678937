// Unit tests of the question header (header.cpp) that need no Python. Expected values were
// produced once with Python 3.11's textwrap and Pillow 13.0.0 and pasted here; full pixel parity
// with Pillow is checked by cpp/tools/check_header.py. Tests that draw text read a TrueType font
// path from P2S_TEST_FONT and are skipped without it.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "header.hpp"

namespace {

using p2s::RgbImage;

std::vector<std::u32string> wrap(const std::string& utf8, int width) {
    return p2s::wrap_question(p2s::utf8_to_u32(utf8), width);
}

std::vector<std::u32string> lines(std::initializer_list<const char*> utf8) {
    std::vector<std::u32string> out;
    for (const char* s : utf8) out.push_back(p2s::utf8_to_u32(s));
    return out;
}

const char* test_font() {
    const char* path = std::getenv("P2S_TEST_FONT");
    return path && *path ? path : nullptr;
}

#define REQUIRE_FONT()                                                  \
    const char* font_path = test_font();                                \
    if (!font_path) GTEST_SKIP() << "set P2S_TEST_FONT to a .ttf file"

RgbImage pattern(int w, int h) {  // the test image the Pillow values below were computed from
    RgbImage image(w, h);
    for (int y = 0; y < h; ++y) {
        for (int x = 0; x < w; ++x) {
            for (int c = 0; c < 3; ++c) image.row(y)[x * 3 + c] = static_cast<uint8_t>((x * 97 + y * 61 + c * 53 + x * y * 29) % 256);
        }
    }
    return image;
}

TEST(Utf8, DecodesAllLengths) {
    EXPECT_EQ(p2s::utf8_to_u32("a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80"), std::u32string(U"a\u00e9\u20ac\U0001F600"));
    EXPECT_EQ(p2s::utf8_to_u32(""), std::u32string());
}

TEST(Utf8, RejectsInvalid) {
    for (const std::string bad : {"\x80", "\xC3", "a\xC3(", "\xE2\x82", "\xC0\xAF", "\xE0\x80\xAF", "\xED\xA0\x80",
                                  "\xF4\x90\x80\x80", "\xF8\x88\x80\x80\x80", "\xFF"}) {
        EXPECT_THROW(p2s::utf8_to_u32(bad), p2s::InputError) << "bytes of length " << bad.size();
    }
}

// Expected lines: textwrap.TextWrapper(width=WIDTH).wrap(TEXT) in Python 3.11.
TEST(Wrap, MatchesPythonTextwrap) {
    EXPECT_EQ(wrap("What is the invoice number?", 80), lines({"What is the invoice number?"}));
    EXPECT_EQ(wrap("", 80), lines({}));
    EXPECT_EQ(wrap("   ", 80), lines({}));
    EXPECT_EQ(wrap("a\tb", 80), lines({"a       b"}));
    EXPECT_EQ(wrap("  leading and trailing  ", 80), lines({"  leading and trailing"}));
    EXPECT_EQ(wrap("one\ntwo\r\nthree\x0b" "four\x0c" "five", 80), lines({"one two  three four five"}));
    EXPECT_EQ(wrap(std::string(85, 'x'), 80), lines({std::string(80, 'x').c_str(), "xxxxx"}));
    EXPECT_EQ(wrap("well-known self-service", 10), lines({"well-known", "self-", "service"}));
    EXPECT_EQ(wrap("state-of-the-art", 6), lines({"state-", "of-", "the-", "art"}));
    EXPECT_EQ(wrap("a--b em--dash", 5), lines({"a--b", "em--", "dash"}));
    EXPECT_EQ(wrap("abcdefghij-klmnopqrst", 12), lines({"abcdefghij-", "klmnopqrst"}));
    EXPECT_EQ(wrap("nbsp\u00a0is\u00a0a\u00a0word here", 8), lines({"nbsp\u00a0is\u00a0", "a\u00a0word", "here"}));
    EXPECT_EQ(wrap("tab\tstops\tat\teight", 80), lines({"tab     stops   at      eight"}));
    // A line that ends at a space before a word too long for any line keeps that space.
    EXPECT_EQ(wrap("1-2 a1-b2 ab-cd", 4), lines({"1-2 ", "a1-", "b2", "ab-", "cd"}));
    EXPECT_EQ(wrap("----------", 4), lines({"----", "----", "--"}));
    std::string words;
    for (int i = 0; i < 20; ++i) words += "word ";
    EXPECT_EQ(wrap(words, 30), lines({"word word word word word word", "word word word word word word",
                                      "word word word word word word", "word word"}));
    EXPECT_EQ(wrap("\u00e9t\u00e9-\u00fcber na\u00efve", 8), lines({"\u00e9t\u00e9-\u00fcber", "na\u00efve"}));
}

// Expected pixels: np.asarray(Image.fromarray(pattern).resize((W, H))) with Pillow 13.0.0.
TEST(Resize, UpscaleBothAxes) {
    const std::vector<uint8_t> expected = {
        0,   42,  94,  25,  78,  149, 91,  144, 214, 168, 221, 103, 211, 255, 23,  26,  75,  138, 71,  124, 132, 142, 195,
        120, 136, 189, 109, 124, 177, 103, 54,  108, 182, 116, 169, 114, 193, 246, 26,  104, 157, 114, 37,  90,  182};
    const RgbImage out = p2s::resize_bicubic(pattern(3, 2), 5, 3);
    ASSERT_EQ(out.width, 5);
    ASSERT_EQ(out.height, 3);
    EXPECT_EQ(out.pixels, expected);
}

TEST(Resize, VerticalPassFirstWhenHeightShrinksMore) {
    // 6 -> 2 rows loses more than twice the pixels of 4 -> 3 columns: Pillow 13 resizes vertically
    // first, which gives different values than the horizontal-first order.
    const std::vector<uint8_t> expected = {84, 137, 147, 120, 174, 107, 124, 154, 100,
                                           153, 138, 117, 97, 156, 102, 105, 105, 129};
    EXPECT_EQ(p2s::resize_bicubic(pattern(4, 6), 3, 2).pixels, expected);
}

TEST(Resize, OneAxisOnly) {
    EXPECT_EQ(p2s::resize_bicubic(pattern(5, 1), 2, 1).pixels, (std::vector<uint8_t>{84, 137, 128, 110, 163, 154}));
    const std::vector<uint8_t> expected = {76,  129, 151, 111, 164, 126, 127, 180, 91,  122, 144, 106,
                                           165, 127, 110, 112, 165, 127, 88,  141, 80,  112, 95,  148};
    EXPECT_EQ(p2s::resize_bicubic(pattern(4, 6), 4, 2).pixels, expected);
}

TEST(Resize, SameSizeIsACopy) {
    const RgbImage in = pattern(7, 5);
    const RgbImage out = p2s::resize_bicubic(in, 7, 5);
    EXPECT_EQ(out.width, 7);
    EXPECT_EQ(out.height, 5);
    EXPECT_EQ(out.pixels, in.pixels);
}

TEST(Resize, RejectsEmptySizes) {
    EXPECT_THROW(p2s::resize_bicubic(pattern(3, 3), 0, 3), p2s::InputError);
}

TEST(Font, MissingFileAndNotAFont) {
    try {
        p2s::HeaderFont font("/nonexistent/font.ttf", 36);
        FAIL() << "no error";
    } catch (const p2s::ModelFolderError& e) {
        const std::string message = e.what();
        EXPECT_EQ(message.rfind("font /nonexistent/font.ttf cannot be opened (", 0), 0u) << message;
        EXPECT_NE(message.find("); re-run convert.py"), std::string::npos) << message;
        EXPECT_EQ(message.find('\n'), std::string::npos);
    }
    const std::string path = testing::TempDir() + "not_a_font.ttf";
    std::ofstream(path) << "this is not a font\n";
    try {
        p2s::HeaderFont font(path, 36);
        FAIL() << "no error";
    } catch (const p2s::ModelFolderError& e) {
        EXPECT_EQ(std::string(e.what()), "font " + path + " cannot be opened (unknown file format); re-run convert.py");
    }
    std::remove(path.c_str());
}

TEST(Font, MissingGlyphs) {
    REQUIRE_FONT();
    const p2s::HeaderFont font(font_path, 36);
    EXPECT_TRUE(font.missing_glyphs(U"What is the invoice number? 123").empty());
    // U+10FFFD is what check_glyphs compares against; whitespace is never reported; each code
    // point once, ascending.
    EXPECT_EQ(font.missing_glyphs(U"a\U0010FFFD \t\u3000b\U0010FFFC\U0010FFFD"),
              (std::vector<char32_t>{0x10FFFC, 0x10FFFD}));
}

TEST(Header, RendersBlackTextOnWhite) {
    REQUIRE_FONT();
    const p2s::HeaderFont font(font_path, 36);
    const RgbImage header = p2s::render_text(U"What is the invoice number?", font, 80, 5);
    ASSERT_GT(header.width, 100);
    ASSERT_GT(header.height, 20);
    int dark = 0;
    for (size_t i = 0; i < header.pixels.size(); i += 3) {
        EXPECT_TRUE(header.pixels[i] == header.pixels[i + 1] && header.pixels[i] == header.pixels[i + 2]);
        dark += header.pixels[i] < 128;
    }
    EXPECT_GT(dark, 100);
    for (int x = 0; x < header.width; ++x) EXPECT_EQ(header.row(0)[x * 3], 255);  // padding
    const RgbImage empty = p2s::render_text(U"", font, 80, 5);
    EXPECT_EQ(empty.width, 10);
    EXPECT_EQ(empty.height, 10);
}

TEST(Header, SizesAndLayout) {
    REQUIRE_FONT();
    const p2s::HeaderFont font(font_path, 36);
    const std::u32string question = U"What is the date?";
    const RgbImage header = p2s::render_text(question, font, 80, 5);
    const RgbImage page = pattern(3 * header.width, 50);
    const RgbImage out = p2s::render_header(page, question, font, 80, 5);
    const int width = page.width;
    const int header_height = static_cast<int>(header.height * (static_cast<double>(width) / header.width));
    ASSERT_EQ(out.width, width);
    ASSERT_EQ(out.height, header_height + 50);
    // The page is not resized (same width): its rows follow the header unchanged.
    EXPECT_TRUE(std::equal(page.pixels.begin(), page.pixels.end(), out.row(header_height)));
    // A one-line header may be taller than the page: no error.
    EXPECT_NO_THROW(p2s::render_header(pattern(3 * header.width, 2), question, font, 80, 5));
}

TEST(Header, WrappedQuestionTallerThanPageIsRefused) {
    REQUIRE_FONT();
    const p2s::HeaderFont font(font_path, 36);
    std::u32string question;
    for (int i = 0; i < 30; ++i) question += U"question ";
    const RgbImage page = pattern(3000, 100);
    const RgbImage header = p2s::render_text(question, font, 80, 5);
    const int width = std::max(header.width, page.width);
    const int height = static_cast<int>(page.height * (static_cast<double>(width) / page.width));
    const int header_height = static_cast<int>(header.height * (static_cast<double>(width) / header.width));
    ASSERT_GT(header_height, height);
    try {
        p2s::render_header(page, question, font, 80, 5);
        FAIL() << "no error";
    } catch (const p2s::InputError& e) {
        EXPECT_EQ(std::string(e.what()), "the question is so long that its header (" + std::to_string(header_height) +
                                             " px) would be taller than the page (" + std::to_string(height) +
                                             " px) at the same width; shorten the question");
    }
}

TEST(Header, ParagraphSeparatorsAndHugeCanvasesAreRefused) {
    REQUIRE_FONT();
    const p2s::HeaderFont font(font_path, 36);
    // Pillow raises RuntimeError("raqm_layout() failed.") for these; there is nothing to match.
    EXPECT_THROW(p2s::render_text(U"What is\u2029the total?", font, 80, 5), p2s::InputError);
    EXPECT_THROW(p2s::render_text(U"What is\u0085the total?", font, 80, 5), p2s::InputError);
    // A 1-pixel-wide page scaled to the header's width would be over 10^8 rows tall.
    EXPECT_THROW(p2s::render_header(RgbImage(1, 100000, 0), U"What is the date?", font, 80, 5), p2s::InputError);
}

}  // namespace
