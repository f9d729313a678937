// image + question -> answer: load_image -> preprocess_page -> encoder -> greedy_decode -> text.
#include "pix2struct/engine.hpp"

#include <chrono>
#include <mutex>

#include "header.hpp"
#include "image_io.hpp"
#include "model_folder.hpp"
#include "preprocess.hpp"
#include "runtime.hpp"
#include "tokenizer.hpp"

namespace p2s {

struct Engine::Impl {
    ModelFolder folder;
    Graphs graphs;
    Detokenizer detokenizer;
    HeaderFont font;
    ModelInfo info;
    std::mutex running;  // one batch at a time: the infer requests and cache buffers are shared

    Impl(const std::string& model_dir, const EngineOptions& options)
        : folder(open_model_folder(model_dir, options.verify_checksums)),
          graphs(folder, options.device, options.threads, options.cache_dir),
          detokenizer(folder.tokenizer_path(), folder.config.generation.clean_up_tokenization_spaces),
          font(folder.font_path(), folder.config.preprocess.text_size) {
        info.default_question = folder.config.generation.default_question;
        info.max_new_tokens = folder.config.generation.max_new_tokens;
        info.max_patches = folder.config.preprocess.max_patches;
        info.num_layers = folder.config.num_layers;
    }

    // One query's image file and question -> flattened patches written into out.
    void preprocess_into(const Query& query, float* out) const {
        const PreprocessConfig& config = folder.config.preprocess;
        preprocess_page(load_image(query.image_path, config.max_image_pixels), query.question, font, config, out);
    }
};

Engine::Engine(const std::string& model_dir, const EngineOptions& options)
    : impl_(std::make_unique<Impl>(model_dir, options)) {}

Engine::~Engine() = default;

const ModelInfo& Engine::info() const { return impl_->info; }

std::vector<float> Engine::preprocess(const Query& query) const {
    const PreprocessConfig& config = impl_->folder.config.preprocess;
    std::vector<float> patches(static_cast<size_t>(config.max_patches) * patch_features(config));
    impl_->preprocess_into(query, patches.data());
    return patches;
}

std::vector<Answer> Engine::answer_batch(const std::vector<Query>& queries, int max_new_tokens, int min_new_tokens) {
    using clock = std::chrono::steady_clock;
    auto seconds = [](clock::time_point since) { return std::chrono::duration<double>(clock::now() - since).count(); };
    if (queries.empty()) return {};
    const ModelConfig& config = impl_->folder.config;
    if (max_new_tokens < 0 || max_new_tokens > kMaxNewTokensCap) {
        throw InputError("max_new_tokens must be between 1 and " + std::to_string(kMaxNewTokensCap));
    }
    const int limit = std::min(max_new_tokens > 0 ? max_new_tokens : config.generation.max_new_tokens,
                               kMaxNewTokensCap);
    const auto start = clock::now();
    const int batch = static_cast<int>(queries.size());
    const size_t features = patch_features(config.preprocess);
    const size_t per_item = static_cast<size_t>(config.preprocess.max_patches) * features;
    std::vector<float> patches(per_item * batch);
    std::vector<float> mask(static_cast<size_t>(config.preprocess.max_patches) * batch);
    std::vector<double> preprocess_seconds;
    for (int i = 0; i < batch; ++i) {
        const auto t0 = clock::now();
        float* out = patches.data() + per_item * i;
        impl_->preprocess_into(queries[i], out);
        // Real patches have a row id of at least 1; padding rows are all zero.
        for (int p = 0; p < config.preprocess.max_patches; ++p) {
            mask[static_cast<size_t>(config.preprocess.max_patches) * i + p] =
                out[static_cast<size_t>(p) * features] != 0.0f ? 1.0f : 0.0f;
        }
        preprocess_seconds.push_back(seconds(t0));
    }
    std::lock_guard<std::mutex> lock(impl_->running);
    auto t0 = clock::now();
    impl_->graphs.encode(patches.data(), mask.data(), batch);
    const double encoder_seconds = seconds(t0);
    t0 = clock::now();
    const GreedyResult decoded = impl_->graphs.greedy_decode(mask.data(), batch, limit, min_new_tokens);
    const double decode_seconds = seconds(t0);
    const double total_seconds = seconds(start);

    std::vector<Answer> answers;
    for (int i = 0; i < batch; ++i) {
        Answer answer;
        answer.image = queries[i].image_path;
        answer.question = queries[i].question;
        for (int64_t id : decoded.tokens[i]) {  // up to and including the first EOS
            answer.token_ids.push_back(id);
            if (id == config.generation.eos_token_id) break;
        }
        answer.text = impl_->detokenizer.decode(answer.token_ids);
        answer.timings = {preprocess_seconds[i], encoder_seconds, decode_seconds, total_seconds};
        answer.step_seconds = decoded.step_seconds;
        answer.batch_size = batch;
        answers.push_back(std::move(answer));
    }
    return answers;
}

Answer Engine::answer(const std::string& image_path, const std::string& question, int max_new_tokens) {
    return answer_batch({Query{image_path, question}}, max_new_tokens).front();
}

}  // namespace p2s
