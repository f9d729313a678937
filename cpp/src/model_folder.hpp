// The model folder convert.py writes, checked and parsed as folder.open_model_folder does.
#pragma once

#include <string>
#include <vector>

#include "pix2struct/errors.hpp"

namespace p2s {

// Settings of Pix2StructImageProcessor the pipeline reproduces (folder.PreprocessConfig).
struct PreprocessConfig {
    int max_patches = 2048;
    int patch_height = 16;
    int patch_width = 16;
    bool is_vqa = true;
    int text_size = 36;
    int header_wrap_width = 80;
    int header_padding = 5;
    long long max_image_pixels = 100000000;  // 0 disables the decompression-bomb guard
};

struct GenerationConfig {
    int64_t decoder_start_token_id = 0;
    int64_t eos_token_id = 1;
    int64_t pad_token_id = 0;
    int max_new_tokens = 19;
    bool clean_up_tokenization_spaces = false;
    std::string default_question = "What is the title of this document?";
};

struct ModelConfig {
    int num_layers = 0;
    int num_heads = 0;
    int d_kv = 0;
    int vocab_size = 0;
    PreprocessConfig preprocess;
    GenerationConfig generation;
    std::string encoder_file = "encoder.onnx";
    std::string decoder_file = "decoder.onnx";
};

struct ModelFolder {
    std::string path;
    ModelConfig config;

    std::string encoder_path() const { return path + "/" + config.encoder_file; }
    std::string decoder_path() const { return path + "/" + config.decoder_file; }
    std::string tokenizer_path() const { return path + "/tokenizer.json"; }
    std::string font_path() const { return path + "/font.ttf"; }
};

// The format this engine reads (folder.FORMAT_VERSION).
constexpr int kFormatVersion = 1;

// Checks every file's size against manifest.json, the SHA-256 of the small files (and of the
// graphs with verify_checksums), parses config.json. Throws ModelFolderError with the same
// one-line messages as the Python side.
ModelFolder open_model_folder(const std::string& path, bool verify_checksums);

// Hex SHA-256 of a file (OpenSSL).
std::string sha256_of(const std::string& path);

}  // namespace p2s
