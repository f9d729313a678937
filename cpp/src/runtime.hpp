// encoder.onnx and decoder.onnx compiled by OpenVINO, and greedy decoding over them.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <openvino/openvino.hpp>

#include "model_folder.hpp"

namespace p2s {

struct GreedyResult {
    std::vector<std::vector<int64_t>> tokens;  // per batch item, pad after EOS (as generate(), minus the start id)
    std::vector<double> step_seconds;
};

class Graphs {
public:
    // Reads and compiles both graphs. f32 inference precision is forced: on CPUs with bf16
    // support OpenVINO would otherwise run in bf16, moving encoder outputs by ~1e-2 and
    // changing answers.
    Graphs(const ModelFolder& folder, const std::string& device, int threads, const std::string& cache_dir);

    // flattened_patches (B, P, F) and attention_mask (B, P) -> the encoder request holds each
    // layer's cross K/V until the next encode().
    void encode(const float* flattened_patches, const float* attention_mask, int batch);

    // Greedy search as transformers' generate(do_sample=False, num_beams=1), with the KV cache.
    GreedyResult greedy_decode(const float* attention_mask, int batch, int max_new_tokens, int min_new_tokens);

private:
    const ModelConfig config_;
    ov::Core core_;
    ov::CompiledModel encoder_, decoder_;
    ov::InferRequest encode_request_, decode_request_;
    std::vector<std::string> cross_names_, past_names_, present_names_;
    // Two cache buffers per past/present tensor: each step reads the past from one and writes
    // the present into the other, so the cache is never copied between steps.
    std::vector<std::vector<float>> cache_a_, cache_b_;
};

}  // namespace p2s
