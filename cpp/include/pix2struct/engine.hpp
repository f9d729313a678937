// Pix2Struct-DocVQA native engine: answers questions about document images from a model folder
// written by convert.py (encoder.onnx, decoder.onnx, tokenizer.json, font.ttf, config.json,
// manifest.json), with OpenVINO. Same preprocessing, greedy decoding and text as inference.py.
//
//   p2s::Engine engine("model");
//   p2s::Answer a = engine.answer("invoice.png", "What is the invoice number?");
//   std::cout << a.text << "\n";
//
// Errors are exceptions: p2s::InputError (bad image, question or option) and
// p2s::ModelFolderError (missing or damaged folder), each with a one-line message.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "pix2struct/errors.hpp"

namespace p2s {

struct EngineOptions {
    int threads = 0;              // inference threads; 0 = OpenVINO's choice (all physical cores)
    std::string device = "CPU";   // OpenVINO device name
    bool verify_checksums = false;  // also check the SHA-256 of the graphs against the manifest
    // OpenVINO's compiled-model cache: the first load writes compiled graphs there (about the
    // size of the model), later loads map them instead of compiling (base model: about 2 s -> 0.9 s).
    // Empty = no cache.
    std::string cache_dir;
};

struct Query {
    std::string image_path;  // PNG or JPEG
    std::string question;    // UTF-8
};

struct Timings {  // seconds; encoder and decode are for the whole batch the query ran in
    double preprocess = 0, encoder = 0, decode = 0, total = 0;
};

struct Answer {
    std::string image;
    std::string question;
    std::string text;                // the answer
    std::vector<int64_t> token_ids;  // generated ids up to and including the first EOS
    Timings timings;
    std::vector<double> step_seconds;  // each decoding step of the batch
    int batch_size = 1;
};

// What a caller may want to know about the loaded folder.
struct ModelInfo {
    std::string default_question;
    int max_new_tokens = 0;  // the folder's default answer length limit
    int max_patches = 0;
    int num_layers = 0;
};

// Hard cap on decoding steps, whatever the caller asks (as MAX_NEW_TOKENS_CAP in Python).
constexpr int kMaxNewTokensCap = 1024;

// Calls may come from several threads: preprocessing runs concurrently, the graphs one batch at a
// time (for parallel batches, use one Engine per thread).
class Engine {
public:
    // Checks the folder against its manifest and compiles both graphs. Throws ModelFolderError.
    explicit Engine(const std::string& model_dir, const EngineOptions& options = {});
    ~Engine();
    Engine(const Engine&) = delete;
    Engine& operator=(const Engine&) = delete;

    // Answers one question. max_new_tokens 0 = the folder's default; capped at kMaxNewTokensCap.
    Answer answer(const std::string& image_path, const std::string& question, int max_new_tokens = 0);

    // Answers the queries together: one encoder run and one decoding loop for the batch.
    // min_new_tokens forbids EOS for that many steps (benchmarks use it to equalise step counts).
    std::vector<Answer> answer_batch(const std::vector<Query>& queries, int max_new_tokens = 0,
                                     int min_new_tokens = 0);

    // Preprocessing alone: flattened patches (max_patches x (2 + 16*16*3), row-major float32)
    // for one query, as preprocessing.preprocess_image gives them.
    std::vector<float> preprocess(const Query& query) const;

    const ModelInfo& info() const;

    struct Impl;

private:
    std::unique_ptr<Impl> impl_;
};

}  // namespace p2s
