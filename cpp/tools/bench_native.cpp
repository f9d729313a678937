// pix2struct-bench-native: one benchmark variant in a native process, for benchmark.py. Prints the
// JSON object bench_worker.py prints (load time from the parent's spawn, warm-up, timed runs with
// per-step seconds, peak resident memory), so the native engine is measured without a Python
// interpreter in its process.
//
//   pix2struct-bench-native --path MODEL --image PNG --question Q --tokens N --runs N --threads N
//                           --spawned-at UNIX_SECONDS [--cache-dir DIR]
#include <chrono>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "pix2struct/engine.hpp"

namespace {

long long peak_rss_bytes() {
    std::ifstream status("/proc/self/status");
    std::string key;
    while (status >> key) {
        if (key == "VmHWM:") {
            long long kilobytes = 0;
            status >> kilobytes;
            return kilobytes * 1024;
        }
        status.ignore(1 << 20, '\n');
    }
    return 0;
}

nlohmann::ordered_json run(p2s::Engine& engine, const p2s::Query& query, int tokens) {
    const auto start = std::chrono::steady_clock::now();
    const p2s::Answer answer = engine.answer_batch({query}, tokens, tokens).front();
    const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    nlohmann::ordered_json out;
    out["preprocess"] = answer.timings.preprocess;
    out["encoder"] = answer.timings.encoder;
    out["steps"] = answer.step_seconds;
    out["total"] = total;
    out["tokens"] = answer.token_ids;
    out["answer"] = answer.text;
    return out;
}

}  // namespace

int main(int argc, char** argv) {
    std::map<std::string, std::string> args;
    for (int i = 1; i + 1 < argc; i += 2) args[argv[i]] = argv[i + 1];
    for (const char* required : {"--path", "--image", "--question", "--tokens", "--runs", "--threads", "--spawned-at"}) {
        if (!args.count(required)) {
            std::cerr << "pix2struct-bench-native: error: " << required << " is required\n";
            return 2;
        }
    }
    try {
        p2s::EngineOptions options;
        options.threads = std::stoi(args["--threads"]);
        options.cache_dir = args.count("--cache-dir") ? args["--cache-dir"] : "";
        p2s::Engine engine(args["--path"], options);
        const double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
        const double load_seconds = now - std::stod(args["--spawned-at"]);
        const p2s::Query query{args["--image"], args["--question"]};
        const int tokens = std::stoi(args["--tokens"]);
        nlohmann::ordered_json result;
        result["load_seconds"] = load_seconds;
        result["warmup"] = run(engine, query, tokens);
        result["runs"] = nlohmann::json::array();
        const int runs = std::stoi(args["--runs"]);
        for (int i = 0; i < runs; ++i) {
            result["runs"].push_back(run(engine, query, tokens));
            std::cerr << "    run " << i + 1 << "/" << runs << ": " << result["runs"].back()["total"].get<double>()
                      << "s\n";
        }
        result["peak_rss_bytes"] = peak_rss_bytes();
        std::cout << result.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
        return 0;
    } catch (const std::exception& error) {
        std::cerr << "pix2struct-bench-native: error: " << error.what() << "\n";
        return 1;
    }
}
