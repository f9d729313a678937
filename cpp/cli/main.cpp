// pix2struct-answer: the native twin of inference.py (same options, output and exit codes).
#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "pix2struct/engine.hpp"

namespace {

constexpr const char* kProg = "pix2struct-answer";

const char* kUsage =
    "usage: pix2struct-answer -m MODEL -i IMAGE [-i IMAGE ...] [-q QUESTION ...] [--json]\n"
    "                         [--max-new-tokens N] [--threads N] [--batch-size N] [--device NAME]\n"
    "                         [--cache-dir DIR] [--verify]\n"
    "\n"
    "Answer questions about document images (PNG, JPEG) with a Pix2Struct-DocVQA model folder written by\n"
    "convert.py, with OpenVINO.\n"
    "\n"
    "  -m, --model DIR         model folder written by convert.py\n"
    "  -i, --image PATH        image file (repeatable)\n"
    "  -q, --question TEXT     question (repeatable)\n"
    "  --json                  print one JSON object per question: answer, token ids, timings\n"
    "  --max-new-tokens N      answer length limit in tokens (default from the folder, at most 1024)\n"
    "  --threads N             inference threads (default: OpenVINO's choice)\n"
    "  --batch-size N          questions run together (default 1)\n"
    "  --device NAME           OpenVINO device (default CPU)\n"
    "  --cache-dir DIR         keep OpenVINO's compiled graphs in DIR: later starts load faster\n"
    "  --verify                also check the SHA-256 of the ONNX files against the manifest\n"
    "\n"
    "Pairing: one image with several -q asks each question of that image; several -i with one -q asks it\n"
    "of every image; equal counts pair them in order. Without -q the folder's default question is asked\n"
    "(printed on stderr). Exit codes: 0 answered, 1 model folder problem, 2 bad input.\n";

struct UsageError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct Arguments {
    std::string model;
    std::vector<std::string> images, questions;
    bool json = false, verify = false;
    int max_new_tokens = 0, threads = 0, batch_size = 1;
    std::string device = "CPU";
    std::string cache_dir;
};

int parse_int(const std::string& option, const std::string& text) {
    try {
        size_t used = 0;
        const long value = std::stol(text, &used);
        if (used != text.size() || value < INT32_MIN || value > INT32_MAX) throw std::invalid_argument(text);
        return static_cast<int>(value);
    } catch (const std::exception&) {
        throw UsageError("argument " + option + ": invalid int value: '" + text + "'");
    }
}

Arguments parse(int argc, char** argv) {
    Arguments args;
    bool has_model = false;
    for (int i = 1; i < argc; ++i) {
        std::string option = argv[i], value;
        bool inline_value = false;
        if (option.rfind("--", 0) == 0 && option.find('=') != std::string::npos) {
            value = option.substr(option.find('=') + 1);
            option = option.substr(0, option.find('='));
            inline_value = true;
        }
        auto next = [&]() -> std::string {
            if (inline_value) return value;
            if (i + 1 >= argc) throw UsageError("argument " + option + ": expected one argument");
            return argv[++i];
        };
        if (option == "-h" || option == "--help") {
            std::cout << kUsage;
            std::exit(0);
        } else if (option == "-m" || option == "--model") {
            args.model = next();
            has_model = true;
        } else if (option == "-i" || option == "--image") {
            args.images.push_back(next());
        } else if (option == "-q" || option == "--question") {
            args.questions.push_back(next());
        } else if (option == "--json") {
            args.json = true;
        } else if (option == "--verify") {
            args.verify = true;
        } else if (option == "--max-new-tokens") {
            args.max_new_tokens = parse_int(option, next());
            if (args.max_new_tokens < 1 || args.max_new_tokens > p2s::kMaxNewTokensCap) {
                throw p2s::InputError("--max-new-tokens must be between 1 and " + std::to_string(p2s::kMaxNewTokensCap));
            }
        } else if (option == "--threads") {
            args.threads = parse_int(option, next());
            if (args.threads < 1) throw p2s::InputError("--threads must be at least 1");
        } else if (option == "--batch-size") {
            args.batch_size = parse_int(option, next());
            if (args.batch_size < 1) throw p2s::InputError("--batch-size must be at least 1");
        } else if (option == "--device") {
            args.device = next();
        } else if (option == "--cache-dir") {
            args.cache_dir = next();
        } else {
            throw UsageError("unrecognized arguments: " + std::string(argv[i]));
        }
    }
    if (!has_model) throw UsageError("the following arguments are required: -m/--model");
    if (args.images.empty()) throw p2s::InputError("no image given; pass -i IMAGE");
    return args;
}

bool is_file(const std::string& path) {
    struct stat info {};
    return stat(path.c_str(), &info) == 0 && S_ISREG(info.st_mode);
}

std::vector<p2s::Query> pair_queries(const Arguments& args, const std::string& default_question) {
    std::vector<std::string> questions = args.questions;
    if (questions.empty()) {
        std::cerr << kProg << ": no question given (-q); asking the default question: '" << default_question
                  << "'\n";
        questions.push_back(default_question);
    }
    std::vector<p2s::Query> queries;
    if (args.images.size() == 1) {
        for (const auto& q : questions) queries.push_back({args.images[0], q});
    } else if (questions.size() == 1) {
        for (const auto& image : args.images) queries.push_back({image, questions[0]});
    } else if (args.images.size() == questions.size()) {
        for (size_t i = 0; i < questions.size(); ++i) queries.push_back({args.images[i], questions[i]});
    } else {
        throw p2s::InputError(std::to_string(args.images.size()) + " images and " + std::to_string(questions.size()) +
                              " questions cannot be paired; pass one image, one question, or as many questions as "
                              "images");
    }
    return queries;
}

int run(int argc, char** argv) {
    const Arguments args = parse(argc, argv);
    // Cheap checks before the model loads, so a typo fails in milliseconds.
    for (const auto& image : args.images) {
        if (!is_file(image)) throw p2s::InputError("image " + image + " does not exist or is not a file; check the path");
    }
    p2s::EngineOptions options;
    options.threads = args.threads;
    options.device = args.device;
    options.verify_checksums = args.verify;
    options.cache_dir = args.cache_dir;
    p2s::Engine engine(args.model, options);
    const std::vector<p2s::Query> queries = pair_queries(args, engine.info().default_question);
    for (size_t start = 0; start < queries.size(); start += args.batch_size) {
        const std::vector<p2s::Query> batch(queries.begin() + start,
                                            queries.begin() + std::min(queries.size(), start + args.batch_size));
        for (const p2s::Answer& answer : engine.answer_batch(batch, args.max_new_tokens)) {
            if (args.json) {
                nlohmann::ordered_json line;
                line["image"] = answer.image;
                line["question"] = answer.question;
                line["answer"] = answer.text;
                line["token_ids"] = answer.token_ids;
                line["num_tokens"] = answer.token_ids.size();
                line["timings"] = {{"preprocess", answer.timings.preprocess},
                                   {"encoder", answer.timings.encoder},
                                   {"decode", answer.timings.decode},
                                   {"total", answer.timings.total}};
                line["batch_size"] = answer.batch_size;
                std::cout << line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
            } else if (queries.size() == 1) {
                std::cout << answer.text << "\n";
            } else {
                std::cout << answer.image << "\t" << answer.question << "\t" << answer.text << "\n";
            }
            std::cout.flush();
        }
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const UsageError& error) {
        std::cerr << kProg << ": error: " << error.what() << " (see --help)\n";
        return 2;
    } catch (const p2s::InputError& error) {
        std::cerr << kProg << ": error: " << error.what() << "\n";
        return 2;
    } catch (const p2s::ModelFolderError& error) {
        std::cerr << kProg << ": error: " << error.what() << "\n";
        return 1;
    } catch (const std::bad_alloc&) {
        std::cerr << kProg << ": error: out of memory; lower --batch-size or use a machine with more memory\n";
        return 1;
    } catch (const std::exception& error) {
        std::string message = error.what();
        message = message.substr(0, message.find('\n'));
        std::cerr << kProg << ": internal error: " << message << "\n";
        return 1;
    }
}
