// The question header, ported from preprocessing.render_header and the Pillow 13 code it runs:
// textwrap.TextWrapper.wrap, ImageDraw.text / textbbox (PIL/ImageDraw.py, PIL/ImageText.py),
// the FreeType driver with Raqm layout (src/_imagingft.c), the "L" mask fill (libImaging/Paste.c)
// and the BICUBIC resize (libImaging/Resample.c). Integer arithmetic is kept as in the C sources so
// that layout and pixels come out the same.

// Resample.c's filter is evaluated in double precision without fused multiply-adds (the x86-64
// wheels of Pillow are built without FMA); contraction would change coefficients in the last bit.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include "header.hpp"

#include <ft2build.h>
#include FT_FREETYPE_H
#include FT_GLYPH_H
#include FT_BITMAP_H

#include <hb-ft.h>
#include <hb.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <mutex>
#include <set>

namespace p2s {

// ---------------------------------------------------------------------------------------------
// UTF-8

namespace {

[[noreturn]] void bad_utf8(size_t offset) {
    throw InputError("the question is not valid UTF-8 (bad byte at offset " + std::to_string(offset) +
                     "); pass UTF-8 text");
}

}  // namespace

std::string u32_to_utf8(const std::u32string& text) {
    std::string out;
    for (const char32_t c : text) {
        if (c < 0x80) {
            out += static_cast<char>(c);
        } else if (c < 0x800) {
            out += static_cast<char>(0xC0 | (c >> 6));
            out += static_cast<char>(0x80 | (c & 0x3F));
        } else if (c < 0x10000) {
            out += static_cast<char>(0xE0 | (c >> 12));
            out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (c & 0x3F));
        } else {
            out += static_cast<char>(0xF0 | (c >> 18));
            out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
            out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (c & 0x3F));
        }
    }
    return out;
}

std::u32string utf8_to_u32(const std::string& text) {
    std::u32string out;
    out.reserve(text.size());
    const auto* s = reinterpret_cast<const unsigned char*>(text.data());
    const size_t n = text.size();
    for (size_t i = 0; i < n;) {
        const unsigned char b = s[i];
        if (b < 0x80) {
            out.push_back(b);
            ++i;
            continue;
        }
        size_t extra;
        char32_t cp, min;
        if ((b & 0xE0) == 0xC0) {
            extra = 1, cp = b & 0x1F, min = 0x80;
        } else if ((b & 0xF0) == 0xE0) {
            extra = 2, cp = b & 0x0F, min = 0x800;
        } else if ((b & 0xF8) == 0xF0) {
            extra = 3, cp = b & 0x07, min = 0x10000;
        } else {
            bad_utf8(i);
        }
        if (i + extra >= n) bad_utf8(i);
        for (size_t k = 1; k <= extra; ++k) {
            if ((s[i + k] & 0xC0) != 0x80) bad_utf8(i + k);
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        // overlong forms, surrogates and code points past U+10FFFF are not UTF-8 either
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) bad_utf8(i);
        out.push_back(cp);
        i += extra + 1;
    }
    return out;
}

bool py_isspace(char32_t c) {
    switch (c) {
        case 0x09: case 0x0A: case 0x0B: case 0x0C: case 0x0D: case 0x1C: case 0x1D: case 0x1E:
        case 0x1F: case 0x20: case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029:
        case 0x202F: case 0x205F: case 0x3000:
            return true;
        default:
            return c >= 0x2000 && c <= 0x200A;
    }
}

// ---------------------------------------------------------------------------------------------
// Character classes of Python's str and re (Unicode 14 in Python 3.11; HarfBuzz's tables are
// used for the general category, they differ only for code points assigned after Unicode 14).

namespace {

hb_unicode_general_category_t category(char32_t c) {
    return hb_unicode_general_category(hb_unicode_funcs_get_default(), c);
}

// The whitespace of textwrap's regexes and translate table: textwrap._whitespace (ASCII only).
bool is_wrap_space(char32_t c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

// re's \d: category Nd.
bool re_digit(char32_t c) {
    if (c < 0x80) return c >= '0' && c <= '9';
    return category(c) == HB_UNICODE_GENERAL_CATEGORY_DECIMAL_NUMBER;
}

// re's \w: str.isalnum() or '_', which is exactly categories L* and N*.
bool re_word(char32_t c) {
    if (c < 0x80) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    }
    switch (category(c)) {
        case HB_UNICODE_GENERAL_CATEGORY_LOWERCASE_LETTER:
        case HB_UNICODE_GENERAL_CATEGORY_MODIFIER_LETTER:
        case HB_UNICODE_GENERAL_CATEGORY_OTHER_LETTER:
        case HB_UNICODE_GENERAL_CATEGORY_TITLECASE_LETTER:
        case HB_UNICODE_GENERAL_CATEGORY_UPPERCASE_LETTER:
        case HB_UNICODE_GENERAL_CATEGORY_DECIMAL_NUMBER:
        case HB_UNICODE_GENERAL_CATEGORY_LETTER_NUMBER:
        case HB_UNICODE_GENERAL_CATEGORY_OTHER_NUMBER:
            return true;
        default:
            return false;
    }
}

bool re_letter(char32_t c) { return re_word(c) && !re_digit(c); }  // textwrap's [^\d\W]

bool re_word_punct(char32_t c) {  // textwrap's [\w!"\'&.,?]
    return re_word(c) || c == '!' || c == '"' || c == '\'' || c == '&' || c == '.' || c == ',' || c == '?';
}

bool is_blank(const std::u32string& s) {  // s.strip() == ''
    return std::all_of(s.begin(), s.end(), py_isspace);
}

// TextWrapper._munge_whitespace: expandtabs(8), then the six ASCII whitespace characters -> ' '.
std::u32string munge_whitespace(const std::u32string& text) {
    std::u32string out;
    out.reserve(text.size());
    size_t column = 0;
    for (char32_t c : text) {
        if (c == '\t') {
            const size_t spaces = 8 - column % 8;
            out.append(spaces, U' ');
            column += spaces;
        } else {
            out.push_back(is_wrap_space(c) ? U' ' : c);
            column = (c == '\n' || c == '\r') ? 0 : column + 1;
        }
    }
    return out;
}

// TextWrapper._split with break_on_hyphens: the matches of wordsep_re, which cover the text.
//   ( ws+
//   | (?<=wp) -{2,} (?=\w)
//   | nws+? (?: -(?: (?<=lt{2}-) | (?<=lt-lt-)) (?= lt -? lt)
//             | (?=ws|\Z)
//             | (?<=wp) (?=-{2,}\w) ) )
// Lookbehinds may look before the start of the match, as re's do.
std::vector<std::u32string> split_chunks(const std::u32string& t) {
    const size_t n = t.size();
    auto is = [&](size_t i, char32_t c) { return i < n && t[i] == c; };
    auto lt = [&](size_t i) { return i < n && re_letter(t[i]); };
    // -{2,}\w starting at i (greedy run of hyphens; backtracking cannot help since '-' is not \w).
    auto dashes_then_word = [&](size_t i, size_t* end) {
        size_t j = i;
        while (j < n && t[j] == '-') ++j;
        if (j - i >= 2 && j < n && re_word(t[j])) {
            if (end) *end = j;
            return true;
        }
        return false;
    };
    std::vector<std::u32string> chunks;
    size_t i = 0;
    while (i < n) {
        size_t end = i;
        if (is_wrap_space(t[i])) {
            while (end < n && is_wrap_space(t[end])) ++end;
        } else if (i > 0 && re_word_punct(t[i - 1]) && dashes_then_word(i, &end)) {
            // an em-dash ("--" or longer) between words
        } else {
            // nws+? followed by one of the three endings, tried for the shortest word first.
            for (size_t j = i + 1;; ++j) {
                // hyphenated word: j is the hyphen, the match includes it
                if (is(j, '-')) {
                    const bool behind = (j >= 2 && lt(j - 2) && lt(j - 1)) ||
                                        (j >= 3 && lt(j - 3) && is(j - 2, '-') && lt(j - 1));
                    const bool ahead = lt(j + 1) && (lt(j + 2) || (is(j + 2, '-') && lt(j + 3)));
                    if (behind && ahead) {
                        end = j + 1;
                        break;
                    }
                }
                if (j == n || is_wrap_space(t[j])) {  // end of word
                    end = j;
                    break;
                }
                if (re_word_punct(t[j - 1]) && dashes_then_word(j, nullptr)) {  // before an em-dash
                    end = j;
                    break;
                }
            }
        }
        chunks.emplace_back(t, i, end - i);
        i = end;
    }
    return chunks;
}

}  // namespace

std::vector<std::u32string> wrap_question(const std::u32string& text, int width) {
    if (width <= 0) throw InputError("invalid wrap width " + std::to_string(width) + " (must be > 0)");
    std::vector<std::u32string> chunks = split_chunks(munge_whitespace(text));
    std::reverse(chunks.begin(), chunks.end());  // a stack, as in _wrap_chunks
    std::vector<std::u32string> lines;
    const size_t w = static_cast<size_t>(width);
    while (!chunks.empty()) {
        std::vector<std::u32string> cur_line;
        size_t cur_len = 0;
        if (is_blank(chunks.back()) && !lines.empty()) chunks.pop_back();
        while (!chunks.empty()) {
            const size_t l = chunks.back().size();
            if (cur_len + l > w) break;
            cur_len += l;
            cur_line.push_back(std::move(chunks.back()));
            chunks.pop_back();
        }
        if (!chunks.empty() && chunks.back().size() > w) {
            // _handle_long_word with break_long_words and break_on_hyphens
            const size_t space_left = w - cur_len;
            std::u32string& chunk = chunks.back();
            size_t end = space_left;
            if (chunk.size() > space_left && space_left > 0) {
                const size_t hyphen = chunk.rfind(U'-', space_left - 1);
                if (hyphen != std::u32string::npos && hyphen > 0 &&
                    std::any_of(chunk.begin(), chunk.begin() + hyphen, [](char32_t c) { return c != '-'; })) {
                    end = hyphen + 1;
                }
            }
            cur_line.push_back(chunk.substr(0, end));
            chunk.erase(0, end);
        }
        if (!cur_line.empty() && is_blank(cur_line.back())) cur_line.pop_back();
        if (!cur_line.empty()) {
            std::u32string line;
            for (const auto& c : cur_line) line += c;
            lines.push_back(std::move(line));
        }
    }
    return lines;
}

// ---------------------------------------------------------------------------------------------
// Font

namespace {

const char* ft_error_text(FT_Error error) {
    switch (error) {
        case FT_Err_Cannot_Open_Resource: return "cannot open resource";
        case FT_Err_Unknown_File_Format: return "unknown file format";
        case FT_Err_Invalid_File_Format: return "broken file";
        case FT_Err_Invalid_Pixel_Size: return "invalid pixel size";
        case FT_Err_Out_Of_Memory: return "out of memory";
        default: return nullptr;
    }
}

std::string ft_error_message(FT_Error error) {
    const char* text = ft_error_text(error);
    return text ? text : "FreeType error " + std::to_string(error);
}

}  // namespace

struct HeaderFont::Impl {
    std::string path;
    int size = 0;
    FT_Library library = nullptr;
    FT_Face face = nullptr;
    hb_font_t* hb_font = nullptr;
    // FreeType faces are not thread-safe: every use of face/hb_font holds this lock.
    mutable std::mutex mutex;

    ~Impl() {
        if (hb_font) hb_font_destroy(hb_font);
        if (face) FT_Done_Face(face);
        if (library) FT_Done_FreeType(library);
    }
};

HeaderFont::HeaderFont(const std::string& path, int size) : impl_(std::make_unique<Impl>()) {
    Impl& f = *impl_;
    f.path = path;
    f.size = size;
    auto fail = [&](const std::string& why) {
        throw ModelFolderError("font " + path + " cannot be opened (" + why + "); re-run convert.py");
    };
    if (size <= 0) fail("font size must be greater than 0, not " + std::to_string(size));
    if (!std::ifstream(path, std::ios::binary)) fail("the file does not exist or cannot be read");
    if (FT_Error e = FT_Init_FreeType(&f.library)) fail(ft_error_message(e));
    if (FT_Error e = FT_New_Face(f.library, path.c_str(), 0, &f.face)) {
        f.face = nullptr;
        fail(ft_error_message(e));
    }
    // getfont in _imagingft.c: a nominal size request of size * 64 in 26.6. The "UTF-8" encoding
    // Pillow is given is not a 4-letter FreeType tag, so the face keeps its default (Unicode) charmap.
    FT_Size_RequestRec req{};
    req.type = FT_SIZE_REQUEST_TYPE_NOMINAL;
    req.width = req.height = static_cast<FT_Long>(size) * 64;
    if (FT_Error e = FT_Request_Size(f.face, &req)) fail(ft_error_message(e));
    // raqm's _raqm_create_hb_font; raqm leaves hb-ft's default load flags (no hinting).
    f.hb_font = hb_ft_font_create_referenced(f.face);
}

HeaderFont::~HeaderFont() = default;

// ---------------------------------------------------------------------------------------------
// Text layout and drawing (_imagingft.c)

namespace {

struct GlyphInfo {
    unsigned index;
    int x_offset, x_advance, y_offset, y_advance;
};

// PIXEL in _imagingft.c: round a 26.6 coordinate to the nearest integer.
inline long pixel(long x) { return ((x + 32) & -64) >> 6; }

// raqm's script itemization (_raqm_resolve_scripts): Common and Inherited characters take the
// script of the text before them (paired brackets that of their opening bracket), leading ones
// the script after them. Runs of one script are shaped separately.
std::vector<hb_script_t> resolve_scripts(const std::u32string& text) {
    static const char32_t paired[] = {0x0028, 0x0029, 0x003c, 0x003e, 0x005b, 0x005d, 0x007b, 0x007d,
                                      0x00ab, 0x00bb, 0x2018, 0x2019, 0x201c, 0x201d, 0x2039, 0x203a,
                                      0x3008, 0x3009, 0x300a, 0x300b, 0x300c, 0x300d, 0x300e, 0x300f,
                                      0x3010, 0x3011, 0x3014, 0x3015, 0x3016, 0x3017, 0x3018, 0x3019,
                                      0x301a, 0x301b};
    auto pair_index = [&](char32_t c) -> int {
        const char32_t* end = std::end(paired);
        const char32_t* it = std::lower_bound(std::begin(paired), end, c);
        return (it != end && *it == c) ? static_cast<int>(it - std::begin(paired)) : -1;
    };
    hb_unicode_funcs_t* ufuncs = hb_unicode_funcs_get_default();
    const int n = static_cast<int>(text.size());
    std::vector<hb_script_t> script(n);
    for (int i = 0; i < n; ++i) script[i] = hb_unicode_script(ufuncs, text[i]);

    std::vector<std::pair<hb_script_t, int>> stack;  // (script, pair index) of open brackets
    int last_script_index = -1, last_set_index = -1;
    hb_script_t last_script = HB_SCRIPT_INVALID;
    for (int i = 0; i < n; ++i) {
        if (script[i] == HB_SCRIPT_COMMON && last_script_index != -1) {
            const int p = pair_index(text[i]);
            if (p >= 0) {
                if ((p & 1) == 0) {
                    script[i] = last_script;
                    last_set_index = i;
                    stack.emplace_back(script[i], p);
                } else {
                    while (!stack.empty() && stack.back().second != (p & ~1)) stack.pop_back();
                    if (!stack.empty()) {
                        script[i] = stack.back().first;
                        last_script = script[i];
                    } else {
                        script[i] = last_script;
                    }
                    last_set_index = i;
                }
            } else {
                script[i] = last_script;
                last_set_index = i;
            }
        } else if (script[i] == HB_SCRIPT_INHERITED && last_script_index != -1) {
            script[i] = last_script;
            last_set_index = i;
        } else {
            for (int j = last_set_index + 1; j < i; ++j) script[j] = script[i];
            last_script = script[i];
            last_script_index = i;
            last_set_index = i;
        }
    }
    for (int i = n - 2; i >= 0; --i) {
        if (script[i] == HB_SCRIPT_INHERITED || script[i] == HB_SCRIPT_COMMON) script[i] = script[i + 1];
    }
    return script;
}

// text_layout_raqm: HarfBuzz shaping of each script run, as raqm sets it up (hb-ft font with
// its default load flags, the default language, beginning/end-of-text flags). Not ported: raqm
// first runs fribidi's bidirectional algorithm; here every run is shaped and placed left to
// right, so right-to-left text (Hebrew, Arabic) is not drawn as Pillow draws it.
std::vector<GlyphInfo> layout(const HeaderFont::Impl& f, const std::u32string& text) {
    std::vector<GlyphInfo> glyphs;
    if (text.empty()) return glyphs;
    const std::vector<hb_script_t> script = resolve_scripts(text);
    const hb_language_t language = hb_language_get_default();
    const auto* utf32 = reinterpret_cast<const uint32_t*>(text.data());
    hb_buffer_t* buffer = hb_buffer_create();
    for (size_t start = 0; start < text.size();) {
        size_t end = start + 1;
        while (end < text.size() && script[end] == script[start]) ++end;
        hb_buffer_clear_contents(buffer);
        hb_buffer_add_utf32(buffer, utf32, static_cast<int>(text.size()), static_cast<unsigned>(start),
                            static_cast<int>(end - start));
        hb_buffer_set_script(buffer, script[start]);
        hb_buffer_set_language(buffer, language);
        hb_buffer_set_direction(buffer, HB_DIRECTION_LTR);
        hb_buffer_set_flags(buffer, static_cast<hb_buffer_flags_t>(HB_BUFFER_FLAG_BOT | HB_BUFFER_FLAG_EOT));
        hb_shape(f.hb_font, buffer, nullptr, 0);
        unsigned count = 0;
        const hb_glyph_info_t* info = hb_buffer_get_glyph_infos(buffer, &count);
        const hb_glyph_position_t* pos = hb_buffer_get_glyph_positions(buffer, &count);
        for (unsigned i = 0; i < count; ++i) {
            glyphs.push_back({info[i].codepoint, pos[i].x_offset, pos[i].x_advance, pos[i].y_offset,
                              pos[i].y_advance});
        }
        start = end;
    }
    hb_buffer_destroy(buffer);
    return glyphs;
}

[[noreturn]] void glyph_error(const HeaderFont::Impl& f, FT_Error e) {
    throw ModelFolderError("font " + f.path + " cannot draw a glyph (" + ft_error_message(e) +
                           "); re-run convert.py");
}

// Result of bounding_box_and_anchors for the anchor "la" (left, ascender).
struct TextBox {
    long width = 0, height = 0;
    int x_offset = 0, y_offset = 0;
};

TextBox bounding_box(const HeaderFont::Impl& f, const std::vector<GlyphInfo>& glyphs) {
    long position = 0, x_min = 0, x_max = 0, y_min = 0, y_max = 0;
    for (const GlyphInfo& g : glyphs) {
        const long px = pixel(position + g.x_offset);
        const long py = pixel(g.y_offset);
        position += g.x_advance;
        x_max = std::max(x_max, pixel(position));
        if (FT_Error e = FT_Load_Glyph(f.face, g.index, FT_LOAD_DEFAULT)) glyph_error(f, e);
        FT_Glyph glyph;
        if (FT_Error e = FT_Get_Glyph(f.face->glyph, &glyph)) glyph_error(f, e);
        FT_BBox bbox;
        FT_Glyph_Get_CBox(glyph, FT_GLYPH_BBOX_PIXELS, &bbox);
        FT_Done_Glyph(glyph);
        x_max = std::max(x_max, static_cast<long>(bbox.xMax) + px);
        x_min = std::min(x_min, static_cast<long>(bbox.xMin) + px);
        y_max = std::max(y_max, static_cast<long>(bbox.yMax) + py);
        y_min = std::min(y_min, static_cast<long>(bbox.yMin) + py);
    }
    const long y_anchor = glyphs.empty() ? 0 : pixel(f.face->size->metrics.ascender);
    TextBox box;
    box.width = x_max - x_min;
    box.height = y_max - y_min;
    box.x_offset = static_cast<int>(x_min);
    box.y_offset = static_cast<int>(y_anchor - y_max);
    return box;
}

// An 8-bit coverage mask, as Image.core.fill("L", size).
struct Mask {
    int width = 0, height = 0;
    std::vector<uint8_t> pixels;
};

// font_render for mode "L", no stroke, anchor "la", start (0, 0): the text's coverage mask and
// its offset from the drawing position.
Mask render_mask(const HeaderFont::Impl& f, const std::vector<GlyphInfo>& glyphs, const TextBox& box) {
    Mask mask;
    mask.width = static_cast<int>(box.width);
    mask.height = static_cast<int>(box.height);
    mask.pixels.assign(static_cast<size_t>(mask.width) * mask.height, 0);
    if (glyphs.empty() || mask.width == 0 || mask.height == 0) return mask;

    // x_min and y_max of the rendered bitmaps, which "must match font_getsize" (they may not).
    long x = 0, y = 0, x_min = 0, y_max = 0;
    for (const GlyphInfo& g : glyphs) {
        const long px = pixel(x + g.x_offset), py = pixel(y + g.y_offset);
        if (FT_Error e = FT_Load_Glyph(f.face, g.index, FT_LOAD_DEFAULT | FT_LOAD_RENDER)) glyph_error(f, e);
        const FT_GlyphSlot slot = f.face->glyph;
        y_max = std::max(y_max, slot->bitmap_top + py);
        x_min = std::min(x_min, slot->bitmap_left + px);
        x += g.x_advance;
        y += g.y_advance;
    }
    x = -x_min * 64;
    y = -y_max * 64;

    FT_Bitmap converted;
    FT_Bitmap_Init(&converted);
    struct ConvertedGuard {
        FT_Library library;
        FT_Bitmap* bitmap;
        ~ConvertedGuard() { FT_Bitmap_Done(library, bitmap); }
    } guard{f.library, &converted};

    for (const GlyphInfo& g : glyphs) {
        const long px = pixel(x + g.x_offset), py = pixel(y + g.y_offset);
        if (FT_Error e = FT_Load_Glyph(f.face, g.index, FT_LOAD_DEFAULT | FT_LOAD_RENDER)) glyph_error(f, e);
        const FT_GlyphSlot slot = f.face->glyph;
        FT_Bitmap bitmap = slot->bitmap;
        const long xx = px + slot->bitmap_left;
        long yy = -(py + slot->bitmap_top);
        if (bitmap.buffer) {
            unsigned scale = 1;
            switch (bitmap.pixel_mode) {
                case FT_PIXEL_MODE_MONO: scale = 255; break;
                case FT_PIXEL_MODE_GRAY2: scale = 255 / 3; break;
                case FT_PIXEL_MODE_GRAY4: scale = 255 / 15; break;
                default: break;
            }
            switch (bitmap.pixel_mode) {
                case FT_PIXEL_MODE_MONO:
                case FT_PIXEL_MODE_GRAY2:
                case FT_PIXEL_MODE_GRAY4:
                    if (FT_Error e = FT_Bitmap_Convert(f.library, &bitmap, &converted, 1)) glyph_error(f, e);
                    bitmap = converted;
                    break;
                case FT_PIXEL_MODE_GRAY:
                    break;
                default:
                    throw ModelFolderError("font " + f.path +
                                           " has glyphs in an unsupported bitmap pixel mode (colour glyphs?); "
                                           "re-run convert.py");
            }
            long x0 = 0, x1 = bitmap.width;
            if (xx < 0) x0 = -xx;
            if (xx + x1 > mask.width) x1 = mask.width - xx;
            const unsigned char* source = bitmap.buffer;
            for (unsigned row = 0; row < bitmap.rows; ++row, ++yy) {
                if (yy >= 0 && yy < mask.height) {
                    uint8_t* target = mask.pixels.data() + static_cast<size_t>(yy) * mask.width + xx;
                    for (long k = x0; k < x1; ++k) {
                        const unsigned src = source[k] * scale;
                        if (src > 0) {
                            if (target[k] > 0) {
                                // CLIP8(src + MULDIV255(target, 255 - src))
                                unsigned tmp = target[k] * (255 - src) + 128;
                                const unsigned v = src + (((tmp >> 8) + tmp) >> 8);
                                target[k] = static_cast<uint8_t>(v < 256 ? v : 255);
                            } else {
                                target[k] = static_cast<uint8_t>(src);
                            }
                        }
                    }
                }
                source += bitmap.pitch;
            }
        }
        x += g.x_advance;
        y += g.y_advance;
    }
    return mask;
}

// ImagingFill2 / fill_mask_L (Paste.c) with a black ink: out = BLEND(mask, out, 0).
void fill_black(RgbImage& image, const Mask& mask, int dx0, int dy0) {
    int xsize = mask.width, ysize = mask.height, sx0 = 0, sy0 = 0;
    if (dx0 < 0) xsize += dx0, sx0 = -dx0, dx0 = 0;
    if (dx0 + xsize > image.width) xsize = image.width - dx0;
    if (dy0 < 0) ysize += dy0, sy0 = -dy0, dy0 = 0;
    if (dy0 + ysize > image.height) ysize = image.height - dy0;
    if (xsize <= 0 || ysize <= 0) return;
    for (int y = 0; y < ysize; ++y) {
        uint8_t* out = image.row(y + dy0) + dx0 * 3;
        const uint8_t* m = mask.pixels.data() + static_cast<size_t>(y + sy0) * mask.width + sx0;
        for (int x = 0; x < xsize; ++x, ++m) {
            for (int c = 0; c < 3; ++c, ++out) {
                const unsigned tmp = *out * (255u - *m) + 128;  // DIV255(out * (255 - m) + 0 * m)
                *out = static_cast<uint8_t>(((tmp >> 8) + tmp) >> 8);
            }
        }
    }
}

struct Line {
    int y;
    std::vector<GlyphInfo> glyphs;
    TextBox box;
};

// ImageText.Text._split for anchor "la", align "left", spacing 4, at (x0, y0): one entry per line
// of text.split("\n"), each line spacing = getbbox("A")[3] + 4 below the previous one.
std::vector<Line> split_lines(const HeaderFont::Impl& f, const std::vector<std::u32string>& lines, int y0) {
    std::vector<Line> out;
    int line_spacing = 0;
    if (lines.size() > 1) {
        const TextBox a = bounding_box(f, layout(f, U"A"));
        line_spacing = static_cast<int>(a.y_offset + a.height) + 4;
    }
    int y = y0;
    for (const auto& text : lines) {
        Line line;
        line.y = y;
        line.glyphs = layout(f, text);
        line.box = bounding_box(f, line.glyphs);
        out.push_back(std::move(line));
        y += line_spacing;
    }
    return out;
}

}  // namespace

RgbImage render_text(const std::u32string& text, const HeaderFont& font, int wrap_width, int padding) {
    const HeaderFont::Impl& f = font.impl();
    std::vector<std::u32string> wrapped = wrap_question(text, wrap_width);
    if (wrapped.empty()) wrapped.emplace_back();  // "\n".join([]) == "", drawn as one empty line
    // Paragraph separators that survive textwrap make raqm_layout fail: Pillow raises
    // RuntimeError("raqm_layout() failed.") for them, so there is no drawing to reproduce.
    for (const auto& line : wrapped) {
        for (char32_t c : line) {
            if (c == 0x1C || c == 0x1D || c == 0x1E || c == 0x85 || c == 0x2029) {
                char code[16];
                std::snprintf(code, sizeof code, "U+%04X", static_cast<unsigned>(c));
                throw InputError(std::string("the question contains ") + code +
                                 ", a paragraph separator the header cannot be drawn with; remove it");
            }
        }
    }
    std::lock_guard<std::mutex> lock(f.mutex);

    // textbbox((0, 0), wrapped): the union of the line boxes; its right and bottom size the image.
    const std::vector<Line> lines = split_lines(f, wrapped, 0);
    long right = 0, bottom = 0;
    for (size_t i = 0; i < lines.size(); ++i) {
        const Line& l = lines[i];
        const long r = l.box.x_offset + l.box.width, b = l.y + l.box.y_offset + l.box.height;
        right = i == 0 ? r : std::max(right, r);
        bottom = i == 0 ? b : std::max(bottom, b);
    }
    const long width = right + 2L * padding, height = bottom + 2L * padding;
    if (width <= 0 || height <= 0 || width > 1 << 20 || height > 1 << 20) {  // not in the Python
        throw InputError("the question's header would be " + std::to_string(width) + "x" + std::to_string(height) +
                         " px; shorten the question");
    }
    RgbImage image(static_cast<int>(width), static_cast<int>(height), 255);

    // ImageDraw.text((padding, padding), wrapped, fill="black"): each line's mask at its offset.
    for (const Line& l : lines) {
        const Mask mask = render_mask(f, l.glyphs, l.box);
        fill_black(image, mask, padding + l.box.x_offset, padding + l.y + l.box.y_offset);
    }
    return image;
}

namespace {

// check_glyphs' draw(text): the text drawn with ImageDraw.text at (0, 0), ink 255, on a black
// "L" canvas of 2 * size pixels square (fill_mask_L: out = BLEND(mask, out, 255)).
std::vector<uint8_t> draw_probe(const HeaderFont::Impl& f, const std::u32string& text) {
    const int side = 2 * f.size;
    std::vector<uint8_t> canvas(static_cast<size_t>(side) * side, 0);
    const std::vector<GlyphInfo> glyphs = layout(f, text);
    const TextBox box = bounding_box(f, glyphs);
    const Mask mask = render_mask(f, glyphs, box);
    for (int y = 0; y < mask.height; ++y) {
        const int cy = y + box.y_offset;
        if (cy < 0 || cy >= side) continue;
        for (int x = 0; x < mask.width; ++x) {
            const int cx = x + box.x_offset;
            if (cx < 0 || cx >= side) continue;
            uint8_t& out = canvas[static_cast<size_t>(cy) * side + cx];
            const unsigned m = mask.pixels[static_cast<size_t>(y) * mask.width + x];
            const unsigned tmp = out * (255 - m) + 255 * m + 128;
            out = static_cast<uint8_t>(((tmp >> 8) + tmp) >> 8);
        }
    }
    return canvas;
}

}  // namespace

std::vector<char32_t> HeaderFont::missing_glyphs(const std::u32string& text) const {
    // preprocessing.check_glyphs: a character is missing when drawing it alone gives the same
    // pixels as drawing U+10FFFD, which no font maps (the .notdef glyph). This is not the same
    // as FT_Get_Char_Index == 0: HarfBuzz draws unmapped default-ignorable characters (U+200B,
    // U+00AD, ...) as nothing, and fonts with a blank .notdef make every blank glyph "missing".
    const std::set<char32_t> unique(text.begin(), text.end());
    std::vector<char32_t> missing;
    std::lock_guard<std::mutex> lock(impl_->mutex);
    const std::vector<uint8_t> notdef = draw_probe(*impl_, U"\U0010FFFD");
    for (char32_t c : unique) {
        if (!py_isspace(c) && draw_probe(*impl_, std::u32string(1, c)) == notdef) missing.push_back(c);
    }
    return missing;
}

// ---------------------------------------------------------------------------------------------
// Resize (Resample.c, 8 bits per channel)

namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;

double bicubic_filter(double x) {
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

// precompute_coeffs + normalize_coeffs_8bpc for the box (0, in_size): for each output pixel the
// first input pixel, the tap count and ksize fixed-point weights.
struct Coeffs {
    int ksize = 0;
    std::vector<int> bounds;  // xmin, count per output pixel
    std::vector<int32_t> kk;  // out_size * ksize
};

Coeffs precompute_coeffs(int in_size, int out_size) {
    const double support_base = 2.0;  // BICUBIC
    const float in0 = 0.0f, in1 = static_cast<float>(in_size);
    const double scale = static_cast<double>(in1 - in0) / out_size;
    const double filterscale = scale < 1.0 ? 1.0 : scale;
    const double support = support_base * filterscale;
    Coeffs c;
    c.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
    c.bounds.resize(static_cast<size_t>(out_size) * 2);
    c.kk.assign(static_cast<size_t>(out_size) * c.ksize, 0);
    std::vector<double> k(c.ksize);
    for (int xx = 0; xx < out_size; ++xx) {
        const double center = in0 + (xx + 0.5) * scale;
        double ww = 0.0;
        const double ss = 1.0 / filterscale;
        int xmin = static_cast<int>(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = static_cast<int>(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        std::fill(k.begin(), k.end(), 0.0);
        for (int x = 0; x < xmax; ++x) {
            const double w = bicubic_filter((x + xmin - center + 0.5) * ss);
            k[x] = w;
            ww += w;
        }
        for (int x = 0; x < xmax; ++x) {
            if (ww != 0.0) k[x] /= ww;
        }
        int32_t* out = &c.kk[static_cast<size_t>(xx) * c.ksize];
        for (int x = 0; x < c.ksize; ++x) {
            out[x] = k[x] < 0 ? static_cast<int32_t>(-0.5 + k[x] * (1 << kPrecisionBits))
                              : static_cast<int32_t>(0.5 + k[x] * (1 << kPrecisionBits));
        }
        c.bounds[xx * 2] = xmin;
        c.bounds[xx * 2 + 1] = xmax;
    }
    return c;
}

inline uint8_t clip8(int32_t in) {
    const int32_t v = in >> kPrecisionBits;
    return static_cast<uint8_t>(v < 0 ? 0 : v > 255 ? 255 : v);
}

// ImagingResampleHorizontal_8bpc on rows [first_row, first_row + rows) of src; the coefficient
// bounds are relative to column first_col of src.
RgbImage resample_horizontal(const RgbImage& src, int first_row, int rows, int first_col, const Coeffs& c,
                             int out_width) {
    RgbImage out(out_width, rows);
    for (int yy = 0; yy < rows; ++yy) {
        const uint8_t* in = src.row(yy + first_row) + first_col * 3;
        uint8_t* o = out.row(yy);
        for (int xx = 0; xx < out_width; ++xx) {
            const int xmin = c.bounds[xx * 2], xmax = c.bounds[xx * 2 + 1];
            const int32_t* k = &c.kk[static_cast<size_t>(xx) * c.ksize];
            int32_t ss0 = 1 << (kPrecisionBits - 1), ss1 = ss0, ss2 = ss0;
            const uint8_t* p = in + xmin * 3;
            for (int x = 0; x < xmax; ++x, p += 3) {
                ss0 += p[0] * k[x];
                ss1 += p[1] * k[x];
                ss2 += p[2] * k[x];
            }
            o[xx * 3] = clip8(ss0);
            o[xx * 3 + 1] = clip8(ss1);
            o[xx * 3 + 2] = clip8(ss2);
        }
    }
    return out;
}

// ImagingResampleVertical_8bpc on columns [first_col, first_col + cols) of src; the coefficient
// bounds are relative to row first_row of src. Rows are accumulated whole for locality; the
// integer sums are the same as Pillow's column-by-column loop.
RgbImage resample_vertical(const RgbImage& src, int first_col, int cols, int first_row, const Coeffs& c,
                           int out_height) {
    RgbImage out(cols, out_height);
    const int row_len = cols * 3;
    std::vector<int32_t> acc(row_len);
    for (int yy = 0; yy < out_height; ++yy) {
        const int ymin = c.bounds[yy * 2], ymax = c.bounds[yy * 2 + 1];
        const int32_t* k = &c.kk[static_cast<size_t>(yy) * c.ksize];
        std::fill(acc.begin(), acc.end(), 1 << (kPrecisionBits - 1));
        for (int y = 0; y < ymax; ++y) {
            const uint8_t* in = src.row(y + ymin + first_row) + first_col * 3;
            const int32_t w = k[y];
            for (int i = 0; i < row_len; ++i) acc[i] += in[i] * w;
        }
        uint8_t* o = out.row(yy);
        for (int i = 0; i < row_len; ++i) o[i] = clip8(acc[i]);
    }
    return out;
}

}  // namespace

RgbImage resize_bicubic(const RgbImage& image, int width, int height) {
    if (width <= 0 || height <= 0 || image.width <= 0 || image.height <= 0) {
        throw InputError("cannot resize a " + std::to_string(image.width) + "x" + std::to_string(image.height) +
                         " image to " + std::to_string(width) + "x" + std::to_string(height));
    }
    const bool need_horizontal = width != image.width, need_vertical = height != image.height;
    if (!need_horizontal && !need_vertical) return image;  // Image.resize returns a copy
    if (!need_vertical) {
        return resample_horizontal(image, 0, image.height, 0, precompute_coeffs(image.width, width), width);
    }
    if (!need_horizontal) {
        return resample_vertical(image, 0, image.width, 0, precompute_coeffs(image.height, height), height);
    }
    // Two passes, each over only the rows (columns) the other one reads. ImagingResampleInner runs
    // the horizontal pass first, except, since Pillow 13 (python-pillow/Pillow#9549), when the
    // height shrinks by more than twice as many pixels as the width; the order changes the
    // rounding between the passes. The rule was checked against Pillow 13 on a few thousand sizes
    // (cpp/tools/check_header.py).
    const Coeffs horiz = precompute_coeffs(image.width, width);
    const Coeffs vert = precompute_coeffs(image.height, height);
    const bool vertical_first = height < image.height && image.height - height > 2 * (image.width - width);
    if (vertical_first) {
        const int first = horiz.bounds[0];
        const int last = horiz.bounds[width * 2 - 2] + horiz.bounds[width * 2 - 1];
        const RgbImage temp = resample_vertical(image, first, last - first, 0, vert, height);
        Coeffs shifted = horiz;
        for (int i = 0; i < width; ++i) shifted.bounds[i * 2] -= first;
        return resample_horizontal(temp, 0, height, 0, shifted, width);
    }
    const int first = vert.bounds[0];
    const int last = vert.bounds[height * 2 - 2] + vert.bounds[height * 2 - 1];
    const RgbImage temp = resample_horizontal(image, first, last - first, 0, horiz, width);
    return resample_vertical(temp, 0, width, -first, vert, height);
}

// ---------------------------------------------------------------------------------------------
// Header

RgbImage render_header(const RgbImage& page, const std::u32string& question, const HeaderFont& font,
                       int wrap_width, int padding) {
    if (page.width <= 0 || page.height <= 0) {
        throw InputError("the image has no pixels (" + std::to_string(page.width) + "x" +
                         std::to_string(page.height) + ")");
    }
    const RgbImage header = render_text(question, font, wrap_width, padding);
    const int width = std::max(header.width, page.width);
    // int(image.height * (width / image.width)): Python float (double) arithmetic, truncated.
    const int64_t height = static_cast<int64_t>(page.height * (static_cast<double>(width) / page.width));
    const int64_t header_height = static_cast<int64_t>(header.height * (static_cast<double>(width) / header.width));
    if (header_height > height && wrap_question(question, wrap_width).size() > 1) {
        throw InputError("the question is so long that its header (" + std::to_string(header_height) +
                         " px) would be taller than the page (" + std::to_string(height) +
                         " px) at the same width; shorten the question");
    }
    // Not in the Python: a page much narrower than the header is scaled up to the header's width,
    // and a very narrow, tall one would need a canvas of many gigabytes.
    if (static_cast<double>(width) * static_cast<double>(height + header_height) > double(1 << 30)) {
        throw InputError("the image (" + std::to_string(page.width) + "x" + std::to_string(page.height) +
                         ") is too narrow: scaled to the header's width of " + std::to_string(width) +
                         " px it would have more than 2^30 pixels; crop or pad it");
    }
    RgbImage canvas(width, static_cast<int>(height + header_height), 255);
    const RgbImage top = resize_bicubic(header, width, static_cast<int>(header_height));
    const RgbImage bottom = resize_bicubic(page, width, static_cast<int>(height));
    std::memcpy(canvas.row(0), top.pixels.data(), top.pixels.size());
    std::memcpy(canvas.row(static_cast<int>(header_height)), bottom.pixels.data(), bottom.pixels.size());
    return canvas;
}

}  // namespace p2s
