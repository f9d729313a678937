#include "runtime.hpp"

#include "pix2struct/engine.hpp"

#include <algorithm>
#include <chrono>
#include <limits>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <sys/mman.h>

#include <openvino/frontend/manager.hpp>

namespace p2s {
namespace {

std::string first_line(const std::string& text) {
    const auto end = text.find('\n');
    std::string line = text.substr(0, end);
    return line.size() > 200 ? line.substr(0, 200) : line;
}

ov::CompiledModel compile(ov::Core& core, const std::string& path, const std::string& device, int threads,
                          const std::vector<std::string>& inputs, const std::vector<std::string>& outputs,
                          bool fused_attention) {
    ov::AnyMap properties{ov::hint::performance_mode(ov::hint::PerformanceMode::LATENCY)};
    if (device.rfind("CPU", 0) == 0) {
        properties.emplace(ov::hint::inference_precision(ov::element::f32));
        // The CPU plugin fuses attention into generated kernels ("snippets"). For the encoder's
        // 2048 x 2048 attention they are faster (1.47 s against 1.72 s per pass); for a decoding
        // step, one query against 2048 cross keys, plain MatMuls are (profiled: 10.1 ms -> 4.7 ms
        // of a 27 ms -> 21 ms step).
        // SNIPPETS_MODE is a CPU plugin property without a public C++ constant (OpenVINO 2026.4.1,
        // the pinned version).
        if (!fused_attention) properties.emplace("SNIPPETS_MODE", "DISABLE");
    }
    if (threads > 0) properties.emplace(ov::inference_num_threads(threads));
    // Ask the ONNX frontend first: given a damaged file, OpenVINO would otherwise try every frontend,
    // and the TensorFlow one prints parse errors on stderr.
    static ov::frontend::FrontEndManager manager;
    const auto onnx = manager.load_by_framework("onnx");
    if (!onnx->supported(path)) {
        throw ModelFolderError(path + " is not an ONNX graph OpenVINO can read; re-run convert.py");
    }
    ov::CompiledModel compiled;
    try {
        // From the path, so OpenVINO maps external weights and, with a cache dir, skips the ONNX entirely.
        compiled = core.compile_model(path, device, properties);
    } catch (const std::exception& error) {
        throw ModelFolderError(path + " cannot be loaded by OpenVINO (" + first_line(error.what()) +
                               "); re-run convert.py");
    }
    auto has = [](const auto& ports, const std::string& name) {
        return std::any_of(ports.begin(), ports.end(), [&](const auto& port) {
            return port.get_names().count(name) > 0;
        });
    };
    for (const auto& name : inputs) {
        if (!has(compiled.inputs(), name)) {
            throw ModelFolderError(path + " does not have the inputs and outputs config.json describes (no input " +
                                   name + "); re-run convert.py");
        }
    }
    for (const auto& name : outputs) {
        if (!has(compiled.outputs(), name)) {
            throw ModelFolderError(path + " does not have the inputs and outputs config.json describes (no output " +
                                   name + "); re-run convert.py");
        }
    }
    return compiled;
}

// OpenVINO maps a graph's external weights (the *.data files of the model folder), or with a cache
// dir its compiled blob, read-only and keeps the mapping for the compiled model's life, though its
// CPU kernels work from repacked copies of most weights. The pages it read while repacking stay resident and count
// against the process: 1.13 GB for the base model. Dropping them (MADV_DONTNEED on a read-only
// shared file mapping loses nothing; a page still needed is read back from the file on its next
// access) brings resident memory down to what is used.
void drop_resident_weight_pages(const std::string& model_dir, const std::string& cache_dir) {
    std::vector<std::string> prefixes;
    for (const std::string& dir : {model_dir, cache_dir}) {
        std::error_code error;
        if (dir.empty()) continue;
        std::string prefix = std::filesystem::weakly_canonical(dir, error).string();
        if (!error) prefixes.push_back(prefix.back() == '/' ? prefix : prefix + '/');
    }
    std::ifstream maps("/proc/self/maps");
    std::string line;
    while (std::getline(maps, line)) {
        std::istringstream fields(line);
        std::string range, perms, offset, device, inode, path;
        fields >> range >> perms >> offset >> device >> inode;
        std::getline(fields >> std::ws, path);
        const bool ours = std::any_of(prefixes.begin(), prefixes.end(),
                                      [&](const std::string& prefix) { return path.rfind(prefix, 0) == 0; });
        if (!ours || perms.size() < 2 || perms[1] != '-') continue;  // read-only mappings only
        const auto dash = range.find('-');
        const uintptr_t start = std::stoull(range.substr(0, dash), nullptr, 16);
        const uintptr_t end = std::stoull(range.substr(dash + 1), nullptr, 16);
        madvise(reinterpret_cast<void*>(start), end - start, MADV_DONTNEED);
    }
}

}  // namespace

Graphs::Graphs(const ModelFolder& folder, const std::string& device, int threads, const std::string& cache_dir)
    : config_(folder.config) {
    if (!cache_dir.empty()) core_.set_property(ov::cache_dir(cache_dir));
    const int layers = config_.num_layers;
    for (int i = 0; i < layers; ++i) {
        for (const char* kind : {"key", "value"}) {
            const std::string suffix = std::string(kind) + "_" + std::to_string(i);
            cross_names_.push_back("cross_" + suffix);
            past_names_.push_back("past_" + suffix);
            present_names_.push_back("present_" + suffix);
        }
    }
    const auto devices = core_.get_available_devices();
    const std::string base = device.substr(0, device.find('.'));
    if (std::none_of(devices.begin(), devices.end(), [&](const std::string& d) { return d.rfind(base, 0) == 0; })) {
        std::string known;
        for (const auto& d : devices) known += (known.empty() ? "" : ", ") + d;
        throw InputError("OpenVINO has no device " + device + " here (available: " + known + ")");
    }
    // The larger graph first: each compile peaks at its mapped weights plus their repacked copies,
    // and the first one's mapped pages are dropped before the second starts.
    std::vector<std::string> decoder_inputs{"input_ids", "encoder_attention_mask"};
    decoder_inputs.insert(decoder_inputs.end(), past_names_.begin(), past_names_.end());
    decoder_inputs.insert(decoder_inputs.end(), cross_names_.begin(), cross_names_.end());
    std::vector<std::string> decoder_outputs{"logits"};
    decoder_outputs.insert(decoder_outputs.end(), present_names_.begin(), present_names_.end());
    decoder_ = compile(core_, folder.decoder_path(), device, threads, decoder_inputs, decoder_outputs,
                       /*fused_attention=*/false);
    drop_resident_weight_pages(folder.path, cache_dir);
    encoder_ = compile(core_, folder.encoder_path(), device, threads, {"flattened_patches", "attention_mask"},
                       cross_names_, /*fused_attention=*/true);
    drop_resident_weight_pages(folder.path, cache_dir);
    encode_request_ = encoder_.create_infer_request();
    decode_request_ = decoder_.create_infer_request();
    cache_a_.resize(past_names_.size());
    cache_b_.resize(past_names_.size());
}

void Graphs::encode(const float* flattened_patches, const float* attention_mask, int batch) {
    const size_t patches = config_.preprocess.max_patches;
    const size_t features = 2 + static_cast<size_t>(config_.preprocess.patch_height) * config_.preprocess.patch_width * 3;
    // The tensors wrap the caller's buffers: no copy.
    encode_request_.set_tensor("flattened_patches",
                               ov::Tensor(ov::element::f32, {static_cast<size_t>(batch), patches, features},
                                          const_cast<float*>(flattened_patches)));
    encode_request_.set_tensor("attention_mask", ov::Tensor(ov::element::f32, {static_cast<size_t>(batch), patches},
                                                            const_cast<float*>(attention_mask)));
    encode_request_.infer();
}

GreedyResult Graphs::greedy_decode(const float* attention_mask, int batch, int max_new_tokens, int min_new_tokens) {
    using clock = std::chrono::steady_clock;
    const GenerationConfig& generation = config_.generation;
    max_new_tokens = std::max(1, std::min(max_new_tokens, kMaxNewTokensCap));
    const size_t b = static_cast<size_t>(batch), heads = config_.num_heads, d = config_.d_kv;
    const size_t patches = config_.preprocess.max_patches;

    ov::InferRequest& request = decode_request_;
    request.set_tensor("encoder_attention_mask",
                       ov::Tensor(ov::element::f32, {b, patches}, const_cast<float*>(attention_mask)));
    // Cross K/V: the encoder request's output tensors, shared, not copied.
    for (const auto& name : cross_names_) request.set_tensor(name, encode_request_.get_tensor(name));

    const size_t capacity = b * heads * static_cast<size_t>(max_new_tokens) * d;
    for (size_t i = 0; i < past_names_.size(); ++i) {
        if (cache_a_[i].size() < capacity) cache_a_[i].resize(capacity);
        if (cache_b_[i].size() < capacity) cache_b_[i].resize(capacity);
    }
    std::vector<std::vector<float>>* past = &cache_a_;
    std::vector<std::vector<float>>* present = &cache_b_;

    std::vector<int64_t> input_ids(b, generation.decoder_start_token_id);
    std::vector<bool> finished(b, false);
    GreedyResult result;
    result.tokens.assign(b, {});
    for (int step = 0; step < max_new_tokens; ++step) {
        const auto start = clock::now();
        const size_t length = static_cast<size_t>(step);
        request.set_tensor("input_ids", ov::Tensor(ov::element::i64, {b, 1}, input_ids.data()));
        for (size_t i = 0; i < past_names_.size(); ++i) {
            request.set_tensor(past_names_[i], ov::Tensor(ov::element::f32, {b, heads, length, d}, (*past)[i].data()));
            request.set_tensor(present_names_[i],
                               ov::Tensor(ov::element::f32, {b, heads, length + 1, d}, (*present)[i].data()));
        }
        request.infer();
        const ov::Tensor logits = request.get_tensor("logits");  // (B, 1, V)
        const size_t vocab = logits.get_shape().back();
        const float* values = logits.data<const float>();
        bool all_done = true;
        for (size_t item = 0; item < b; ++item) {
            int64_t next = generation.pad_token_id;
            if (!finished[item]) {
                const float* row = values + item * vocab;
                // argmax, first index on ties (numpy's and torch's rule); EOS barred before min_new_tokens
                float best = -std::numeric_limits<float>::infinity();
                int64_t best_id = 0;
                for (size_t v = 0; v < vocab; ++v) {
                    if (step < min_new_tokens && static_cast<int64_t>(v) == generation.eos_token_id) continue;
                    if (row[v] > best) {
                        best = row[v];
                        best_id = static_cast<int64_t>(v);
                    }
                }
                next = best_id;
                if (next == generation.eos_token_id) finished[item] = true;
            }
            result.tokens[item].push_back(next);
            input_ids[item] = next;
            all_done = all_done && finished[item];
        }
        result.step_seconds.push_back(std::chrono::duration<double>(clock::now() - start).count());
        if (all_done) break;
        std::swap(past, present);
    }
    return result;
}

}  // namespace p2s
