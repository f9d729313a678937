// Preprocessing arithmetic that needs no Python: grid sizes, standardisation, the resize filter and
// patch layout. Exact parity with the Python arrays is tested in tests/test_native.py.
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>

#include "preprocess.hpp"

namespace {

TEST(PatchGrid, MatchesThePythonFormula) {
    // Values from preprocessing.patch_grid.
    EXPECT_EQ(p2s::patch_grid(2200, 1700, 2048, 16, 16), std::make_pair(51, 39));
    EXPECT_EQ(p2s::patch_grid(1, 1, 2048, 16, 16), std::make_pair(45, 45));
    EXPECT_EQ(p2s::patch_grid(100, 20000, 2048, 16, 16), std::make_pair(3, 640));
    EXPECT_EQ(p2s::patch_grid(100000, 1, 16, 16, 16), std::make_pair(16, 1));
}

TEST(Standardize, ZeroMeanUnitStdAndFloor) {
    p2s::RgbImage image(3, 2);
    for (size_t i = 0; i < image.pixels.size(); ++i) image.pixels[i] = static_cast<uint8_t>(i * 13);
    const p2s::FloatImage out = p2s::standardize(image);
    double mean = std::accumulate(out.values.begin(), out.values.end(), 0.0) / out.values.size();
    double var = 0;
    for (float v : out.values) var += (v - mean) * (v - mean);
    EXPECT_NEAR(mean, 0.0, 1e-6);
    EXPECT_NEAR(std::sqrt(var / out.values.size()), 1.0, 1e-6);
    // A flat image has std 0: it is floored at 1/sqrt(N), so values stay finite (all zero).
    const p2s::FloatImage flat = p2s::standardize(p2s::RgbImage(4, 4, 200));
    for (float v : flat.values) EXPECT_EQ(v, 0.0f);
}

TEST(ResizeBilinearAntialias, SameSizeIsIdentityAndConstantsStayConstant) {
    p2s::FloatImage image{5, 7, 3, std::vector<float>(5 * 7 * 3)};
    for (size_t i = 0; i < image.values.size(); ++i) image.values[i] = std::sin(static_cast<float>(i));
    const p2s::FloatImage same = p2s::resize_bilinear_antialias(image, 5, 7);
    EXPECT_EQ(same.values, image.values);
    p2s::FloatImage constant{40, 30, 3, std::vector<float>(40 * 30 * 3, 0.25f)};
    for (auto [h, w] : {std::pair{7, 9}, std::pair{80, 61}, std::pair{3, 100}}) {
        const p2s::FloatImage resized = p2s::resize_bilinear_antialias(constant, h, w);
        ASSERT_EQ(resized.values.size(), static_cast<size_t>(h * w * 3));
        for (float v : resized.values) EXPECT_NEAR(v, 0.25f, 1e-6f);
    }
}

TEST(ResizeBilinearAntialias, HalvingAveragesPairs) {
    // Downscaling by 2: the triangle filter is 2 pixels wide each side, truncated and renormalised at
    // the borders. Expected values from preprocessing.resize_bilinear_antialias (equal to torch's).
    p2s::FloatImage ramp{1, 8, 1, {0, 1, 2, 3, 4, 5, 6, 7}};
    const p2s::FloatImage out = p2s::resize_bilinear_antialias(ramp, 1, 4);
    const std::vector<float> expected{0.71428573f, 2.5f, 4.5f, 6.285714f};
    for (size_t i = 0; i < expected.size(); ++i) EXPECT_NEAR(out.values[i], expected[i], 1e-6f) << i;
}

TEST(ExtractPatches, RowAndColumnIdsThenPixelsThenZeros) {
    p2s::PreprocessConfig config;
    config.max_patches = 8;
    config.patch_height = 2;
    config.patch_width = 2;
    p2s::FloatImage image{4, 8, 3, std::vector<float>(4 * 8 * 3)};
    for (size_t i = 0; i < image.values.size(); ++i) image.values[i] = static_cast<float>(i);
    const int features = p2s::patch_features(config);
    std::vector<float> out(static_cast<size_t>(config.max_patches) * features, -1.0f);
    p2s::extract_patches(image, config, out.data());
    // 4x8 at 8 patches of 2x2 -> a 2x4 grid, no resize needed.
    for (int p = 0; p < 8; ++p) {
        EXPECT_EQ(out[p * features + 0], p / 4 + 1);
        EXPECT_EQ(out[p * features + 1], p % 4 + 1);
    }
    // Patch (row 1, col 2): pixels (2..3, 4..5) in (ph, pw, C) order.
    const float* patch = &out[6 * features + 2];
    EXPECT_EQ(patch[0], (2 * 8 + 4) * 3);
    EXPECT_EQ(patch[3], (2 * 8 + 5) * 3);
    EXPECT_EQ(patch[6], (3 * 8 + 4) * 3);
}

TEST(CheckQuestion, RefusesBlankAndHugeQuestions) {
    EXPECT_THROW(p2s::check_question(U""), p2s::InputError);
    EXPECT_THROW(p2s::check_question(U" \t\n\u3000"), p2s::InputError);
    EXPECT_THROW(p2s::check_question(std::u32string(2001, U'a')), p2s::InputError);
    EXPECT_NO_THROW(p2s::check_question(std::u32string(2000, U'a')));
    EXPECT_NO_THROW(p2s::check_question(U"What is the date?"));
}

}  // namespace
