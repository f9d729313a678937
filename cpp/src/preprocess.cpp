// Float arithmetic here follows torch's order of operations and must not be contracted into
// FMAs (CMake compiles this file with -ffp-contract=off), so results match the Python arrays.
#include "preprocess.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace p2s {

FloatImage standardize(const RgbImage& image) {
    FloatImage out{image.height, image.width, 3, std::vector<float>(image.pixels.size())};
    const size_t n = image.pixels.size();
    // Sums in double: exact for 8-bit values, where numpy's float32 pairwise sum rounds (the two
    // agree to about 1e-7 relative).
    double sum = 0, sum_sq = 0;
    for (uint8_t v : image.pixels) sum += v;
    const float mean = static_cast<float>(sum / static_cast<double>(n));
    for (uint8_t v : image.pixels) {
        const double d = static_cast<double>(static_cast<float>(v) - mean);
        sum_sq += d * d;
    }
    const double std_dev = std::sqrt(sum_sq / static_cast<double>(n));
    const float scale = static_cast<float>(std::max(std_dev, 1.0 / std::sqrt(static_cast<double>(n))));
    for (size_t i = 0; i < n; ++i) out.values[i] = (static_cast<float>(image.pixels[i]) - mean) / scale;
    return out;
}

std::pair<int, int> patch_grid(int height, int width, int max_patches, int patch_h, int patch_w) {
    const double scale = std::sqrt(max_patches * (static_cast<double>(patch_h) / height) *
                                   (static_cast<double>(patch_w) / width));
    const int rows = std::max(std::min(static_cast<int>(std::floor(scale * height / patch_h)), max_patches), 1);
    const int cols = std::max(std::min(static_cast<int>(std::floor(scale * width / patch_w)), max_patches), 1);
    return {rows, cols};
}

namespace {

// Taps of torch's antialiased triangle filter along one axis, in float32 as
// aten/src/ATen/native/cpu/UpSampleKernel.cpp computes them (see preprocessing._antialias_weights).
struct AxisWeights {
    int taps = 0;
    std::vector<int> first;      // first input index per output
    std::vector<int> count;      // taps used per output
    std::vector<float> weights;  // out x taps
};

AxisWeights antialias_weights(int in_size, int out_size) {
    const float scale = static_cast<float>(in_size) / static_cast<float>(out_size);
    const float support = scale >= 1.0f ? scale : 1.0f;
    const float inverse = scale >= 1.0f ? 1.0f / scale : 1.0f;
    AxisWeights axis;
    axis.first.resize(out_size);
    axis.count.resize(out_size);
    std::vector<float> centers(out_size);
    for (int i = 0; i < out_size; ++i) {
        const float center = scale * (static_cast<float>(i) + 0.5f);
        const int xmin = std::max(static_cast<int>(std::trunc(center - support + 0.5f)), 0);
        const int xmax = std::min(static_cast<int>(std::trunc(center + support + 0.5f)), in_size);
        centers[i] = center;
        axis.first[i] = xmin;
        axis.count[i] = std::max(xmax - xmin, 0);
        axis.taps = std::max(axis.taps, axis.count[i]);
    }
    axis.weights.assign(static_cast<size_t>(out_size) * axis.taps, 0.0f);
    for (int i = 0; i < out_size; ++i) {
        float* w = &axis.weights[static_cast<size_t>(i) * axis.taps];
        float total = 0.0f;
        for (int j = 0; j < axis.count[i]; ++j) {
            const float distance = (static_cast<float>(axis.first[i] + j) - centers[i] + 0.5f) * inverse;
            w[j] = std::max(0.0f, 1.0f - std::fabs(distance));
            total += w[j];
        }
        if (total != 0.0f) {
            for (int j = 0; j < axis.count[i]; ++j) w[j] /= total;
        }
    }
    return axis;
}

}  // namespace

FloatImage resize_bilinear_antialias(const FloatImage& image, int height, int width) {
    const int channels = image.channels;
    // Width first, as torch does; each output accumulates its taps in order from zero.
    const AxisWeights across = antialias_weights(image.width, width);
    FloatImage wide{image.height, width, channels,
                    std::vector<float>(static_cast<size_t>(image.height) * width * channels, 0.0f)};
    for (int y = 0; y < image.height; ++y) {
        const float* in_row = &image.values[static_cast<size_t>(y) * image.width * channels];
        float* out_row = &wide.values[static_cast<size_t>(y) * width * channels];
        for (int x = 0; x < width; ++x) {
            const float* w = &across.weights[static_cast<size_t>(x) * across.taps];
            float* out = out_row + static_cast<size_t>(x) * channels;
            for (int j = 0; j < across.count[x]; ++j) {
                const float* in = in_row + static_cast<size_t>(across.first[x] + j) * channels;
                for (int c = 0; c < channels; ++c) out[c] += in[c] * w[j];
            }
        }
    }
    const AxisWeights down = antialias_weights(image.height, height);
    FloatImage out{height, width, channels, std::vector<float>(static_cast<size_t>(height) * width * channels, 0.0f)};
    const size_t row_size = static_cast<size_t>(width) * channels;
    for (int y = 0; y < height; ++y) {
        const float* w = &down.weights[static_cast<size_t>(y) * down.taps];
        float* out_row = &out.values[static_cast<size_t>(y) * row_size];
        for (int j = 0; j < down.count[y]; ++j) {
            const float* in_row = &wide.values[static_cast<size_t>(down.first[y] + j) * row_size];
            const float weight = w[j];
            for (size_t k = 0; k < row_size; ++k) out_row[k] += in_row[k] * weight;
        }
    }
    return out;
}

void extract_patches(const FloatImage& image, const PreprocessConfig& config, float* out) {
    const int ph = config.patch_height, pw = config.patch_width;
    const auto [rows, cols] = patch_grid(image.height, image.width, config.max_patches, ph, pw);
    const FloatImage resized = resize_bilinear_antialias(image, rows * ph, cols * pw);
    const int channels = resized.channels;
    const size_t features = 2 + static_cast<size_t>(ph) * pw * channels;
    std::memset(out, 0, sizeof(float) * features * config.max_patches);
    const size_t row_size = static_cast<size_t>(resized.width) * channels;
    for (int r = 0; r < rows; ++r) {
        for (int c = 0; c < cols; ++c) {
            float* patch = out + (static_cast<size_t>(r) * cols + c) * features;
            patch[0] = static_cast<float>(r + 1);
            patch[1] = static_cast<float>(c + 1);
            float* pixels = patch + 2;  // (ph, pw, C) order
            for (int y = 0; y < ph; ++y) {
                const float* src = &resized.values[(static_cast<size_t>(r) * ph + y) * row_size +
                                                   static_cast<size_t>(c) * pw * channels];
                std::memcpy(pixels + static_cast<size_t>(y) * pw * channels, src, sizeof(float) * pw * channels);
            }
        }
    }
}

void check_question(const std::u32string& question) {
    const bool blank = std::all_of(question.begin(), question.end(), py_isspace);
    if (blank) {
        throw InputError("the question is empty; pass a question with -q, e.g. -q \"What is the date?\"");
    }
    if (question.size() > kMaxQuestionChars) {
        throw InputError("the question has " + std::to_string(question.size()) + " characters, more than the limit of " +
                         std::to_string(kMaxQuestionChars) + "; shorten it");
    }
}

void preprocess_page(const RgbImage& page, const std::string& question_utf8, const HeaderFont& font,
                     const PreprocessConfig& config, float* out) {
    const std::u32string question = utf8_to_u32(question_utf8);
    check_question(question);
    const std::vector<char32_t> missing = font.missing_glyphs(question);
    if (!missing.empty()) {
        std::string shown;
        for (size_t i = 0; i < missing.size() && i < 5; ++i) {
            char code[16];
            std::snprintf(code, sizeof(code), "U+%04X", static_cast<unsigned>(missing[i]));
            shown += (i ? ", '" : "'") + u32_to_utf8(std::u32string(1, missing[i])) + "' (" + code + ")";
        }
        throw InputError("the header font has no glyph for " + shown +
                         "; the model reads questions drawn with this font, so rephrase the question without "
                         "these characters");
    }
    if (config.is_vqa) {
        const RgbImage canvas = render_header(page, question, font, config.header_wrap_width, config.header_padding);
        extract_patches(standardize(canvas), config, out);
    } else {
        extract_patches(standardize(page), config, out);
    }
}

}  // namespace p2s
