// Page + question -> flattened patches, as preprocessing.preprocess_image does:
// render_header -> standardize -> antialiased bilinear resize to the patch grid -> patches.
#pragma once

#include <string>
#include <vector>

#include "header.hpp"
#include "image.hpp"
#include "model_folder.hpp"

namespace p2s {

// Float32 image (H, W, C) row-major.
struct FloatImage {
    int height = 0, width = 0, channels = 0;
    std::vector<float> values;
};

// One mean and one std over all values, std floored at 1/sqrt(N) (preprocessing.standardize).
FloatImage standardize(const RgbImage& image);

// Largest rows x cols grid that keeps the aspect ratio and fits max_patches.
std::pair<int, int> patch_grid(int height, int width, int max_patches, int patch_h, int patch_w);

// torch.nn.functional.interpolate(mode="bilinear", align_corners=False, antialias=True).
FloatImage resize_bilinear_antialias(const FloatImage& image, int height, int width);

// Resize to the patch grid and flatten into out (max_patches x (2 + ph*pw*C)), row/col ids
// 1-based, the rest zero. out must hold max_patches * (2 + ph*pw*C) floats.
void extract_patches(const FloatImage& image, const PreprocessConfig& config, float* out);

// Refuses an empty or whitespace question, or one over kMaxQuestionChars code points.
void check_question(const std::u32string& question);
constexpr size_t kMaxQuestionChars = 2000;

// The whole step for one page and question (UTF-8); writes the patches into out.
void preprocess_page(const RgbImage& page, const std::string& question, const HeaderFont& font,
                     const PreprocessConfig& config, float* out);

// Features per patch: 2 + ph*pw*3.
inline int patch_features(const PreprocessConfig& config) {
    return 2 + config.patch_height * config.patch_width * 3;
}

}  // namespace p2s
