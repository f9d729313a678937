// Written by hand because no C or header-only library reads tokenizer.json for decoding; it
// follows the Rust sources of huggingface/tokenizers (decoders/*.rs, Tokenizer::decode) and is
// tested against the Python tokenizers package on random id sequences (tests/test_native.py).
#include "tokenizer.hpp"

#include <fstream>
#include <nlohmann/json.hpp>
#include <unordered_map>
#include <unordered_set>

using nlohmann::json;

namespace p2s {
namespace {

// One decoder step: tokens in, tokens out (tokenizers' Decoder::decode_chain).
struct Step {
    enum Kind { Metaspace, Replace, ByteFallback, Fuse, Strip } kind = Metaspace;
    std::string a, b;      // Metaspace: replacement; Replace: pattern, content; Strip: content
    bool flag = false;     // Metaspace: strip the replacement from the first token
    size_t start = 0, stop = 0;  // Strip
};

Step make_step(Step::Kind kind) {
    Step step;
    step.kind = kind;
    return step;
}

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
    if (from.empty()) return text;
    size_t at = 0;
    while ((at = text.find(from, at)) != std::string::npos) {
        text.replace(at, from.size(), to);
        at += to.size();
    }
    return text;
}

// Number of bytes of the UTF-8 character that starts with byte c.
size_t utf8_length(unsigned char c) {
    if (c < 0x80) return 1;
    if ((c >> 5) == 6) return 2;
    if ((c >> 4) == 14) return 3;
    if ((c >> 3) == 30) return 4;
    return 1;
}

bool valid_utf8(const std::string& s) {
    size_t i = 0;
    while (i < s.size()) {
        const unsigned char c = s[i];
        size_t n = utf8_length(c);
        if (n == 1 && c >= 0x80) return false;
        if (i + n > s.size()) return false;
        uint32_t cp = n == 1 ? c : n == 2 ? (c & 0x1F) : n == 3 ? (c & 0x0F) : (c & 0x07);
        for (size_t k = 1; k < n; ++k) {
            const unsigned char d = s[i + k];
            if ((d >> 6) != 2) return false;
            cp = (cp << 6) | (d & 0x3F);
        }
        if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF)) {
            return false;
        }
        i += n;
    }
    return true;
}

std::vector<std::string> apply(const Step& step, std::vector<std::string> tokens) {
    switch (step.kind) {
    case Step::Metaspace:
        // decoders Metaspace: every replacement becomes a space, except in the first token when
        // a prefix space was prepended at encoding (there it is dropped).
        for (size_t i = 0; i < tokens.size(); ++i) {
            tokens[i] = replace_all(tokens[i], step.a, (i == 0 && step.flag) ? "" : " ");
        }
        return tokens;
    case Step::Replace:
        for (auto& token : tokens) token = replace_all(token, step.a, step.b);
        return tokens;
    case Step::Fuse: {
        std::string joined;
        for (const auto& token : tokens) joined += token;
        return {joined};
    }
    case Step::Strip:
        // Removes up to `start` leading and `stop` trailing copies of the content character.
        for (auto& token : tokens) {
            size_t begin = 0, end = token.size();
            for (size_t k = 0; k < step.start && token.compare(begin, step.a.size(), step.a) == 0 &&
                               begin + step.a.size() <= end; ++k) {
                begin += step.a.size();
            }
            for (size_t k = 0; k < step.stop && end >= begin + step.a.size() &&
                               token.compare(end - step.a.size(), step.a.size(), step.a) == 0; ++k) {
                end -= step.a.size();
            }
            token = token.substr(begin, end - begin);
        }
        return tokens;
    case Step::ByteFallback: {
        // <0xAB> tokens become bytes; a run of them that is not valid UTF-8 becomes one U+FFFD per byte.
        std::vector<std::string> out;
        std::string bytes;
        size_t byte_count = 0;
        auto flush = [&]() {
            if (byte_count == 0) return;
            if (valid_utf8(bytes)) {
                out.push_back(bytes);
            } else {
                for (size_t k = 0; k < byte_count; ++k) out.push_back("\xEF\xBF\xBD");
            }
            bytes.clear();
            byte_count = 0;
        };
        for (auto& token : tokens) {
            if (token.size() == 6 && token.compare(0, 3, "<0x") == 0 && token[5] == '>' &&
                std::isxdigit(static_cast<unsigned char>(token[3])) &&
                std::isxdigit(static_cast<unsigned char>(token[4]))) {
                bytes += static_cast<char>(std::stoi(token.substr(3, 2), nullptr, 16));
                ++byte_count;
            } else {
                flush();
                out.push_back(std::move(token));
            }
        }
        flush();
        return out;
    }
    }
    return tokens;
}

}  // namespace

struct Detokenizer::Impl {
    std::vector<std::string> vocab;                       // model vocabulary by id
    std::unordered_map<int64_t, std::string> added;       // added tokens by id (override the model)
    std::unordered_set<std::string> special;              // contents of special added tokens
    std::vector<Step> steps;
    bool has_decoder = false;
    bool clean_up = false;
};

namespace {

[[noreturn]] void bad(const std::string& path, const std::string& why) {
    throw ModelFolderError(path + " is not a valid tokenizer file (" + why + "); re-run convert.py");
}

void parse_decoder(const json& decoder, std::vector<Step>& steps, const std::string& path) {
    const std::string type = decoder.value("type", "");
    if (type == "Sequence") {
        for (const auto& inner : decoder.at("decoders")) parse_decoder(inner, steps, path);
    } else if (type == "Metaspace") {
        Step step = make_step(Step::Metaspace);
        step.a = decoder.value("replacement", "\u2581");
        // Newer files say prepend_scheme (always/first/never), older ones add_prefix_space.
        if (decoder.contains("prepend_scheme")) {
            step.flag = decoder.at("prepend_scheme").get<std::string>() != "never";
        } else {
            step.flag = decoder.value("add_prefix_space", true);
        }
        steps.push_back(step);
    } else if (type == "Replace") {
        const json& pattern = decoder.at("pattern");
        if (!pattern.contains("String")) bad(path, "Replace decoder with a regex pattern is not supported");
        Step step = make_step(Step::Replace);
        step.a = pattern.at("String").get<std::string>();
        step.b = decoder.at("content").get<std::string>();
        steps.push_back(step);
    } else if (type == "ByteFallback") {
        steps.push_back(make_step(Step::ByteFallback));
    } else if (type == "Fuse") {
        steps.push_back(make_step(Step::Fuse));
    } else if (type == "Strip") {
        Step step = make_step(Step::Strip);
        step.a = decoder.at("content").get<std::string>();
        step.start = decoder.value("start", 0);
        step.stop = decoder.value("stop", 0);
        steps.push_back(step);
    } else {
        bad(path, "decoder type '" + type + "' is not supported by the native engine");
    }
}

}  // namespace

Detokenizer::Detokenizer(const std::string& path, bool clean_up_spaces) : impl_(std::make_unique<Impl>()) {
    std::ifstream in(path, std::ios::binary);
    if (!in) bad(path, "cannot be read");
    const json data = json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (data.is_discarded() || !data.is_object()) bad(path, "not JSON");
    impl_->clean_up = clean_up_spaces;
    try {
        const json& model = data.at("model");
        const std::string type = model.value("type", "");
        if (type == "Unigram") {
            for (const auto& piece : model.at("vocab")) impl_->vocab.push_back(piece.at(0).get<std::string>());
        } else if (type == "BPE" || type == "WordLevel" || type == "WordPiece") {
            for (const auto& [token, id] : model.at("vocab").items()) {
                const auto index = id.get<int64_t>();
                if (index < 0) bad(path, "negative id");
                if (static_cast<size_t>(index) >= impl_->vocab.size()) impl_->vocab.resize(index + 1);
                impl_->vocab[index] = token;
            }
        } else {
            bad(path, "model type '" + type + "' is not supported by the native engine");
        }
        if (data.contains("added_tokens") && data.at("added_tokens").is_array()) {
            for (const auto& token : data.at("added_tokens")) {
                const std::string content = token.at("content").get<std::string>();
                impl_->added[token.at("id").get<int64_t>()] = content;
                if (token.value("special", false)) impl_->special.insert(content);
            }
        }
        if (data.contains("decoder") && !data.at("decoder").is_null()) {
            impl_->has_decoder = true;
            parse_decoder(data.at("decoder"), impl_->steps, path);
        }
    } catch (const json::exception& error) {
        bad(path, error.what());
    }
}

Detokenizer::~Detokenizer() = default;

std::string Detokenizer::decode(const std::vector<int64_t>& ids) const {
    // Tokenizer::decode: ids -> tokens (added vocabulary first), unknown ids dropped, special
    // tokens skipped, then the decoder chain; without a decoder tokens are joined by spaces.
    std::vector<std::string> tokens;
    for (int64_t id : ids) {
        const std::string* token = nullptr;
        if (auto it = impl_->added.find(id); it != impl_->added.end()) {
            token = &it->second;
        } else if (id >= 0 && static_cast<size_t>(id) < impl_->vocab.size()) {
            token = &impl_->vocab[id];
        }
        if (token == nullptr || impl_->special.count(*token)) continue;
        tokens.push_back(*token);
    }
    std::string text;
    if (!impl_->has_decoder) {
        for (size_t i = 0; i < tokens.size(); ++i) text += (i ? " " : "") + tokens[i];
    } else {
        for (const Step& step : impl_->steps) tokens = apply(step, std::move(tokens));
        for (const auto& token : tokens) text += token;
    }
    return impl_->clean_up ? clean_up_tokenization(text) : text;
}

std::string clean_up_tokenization(std::string text) {
    static const std::pair<const char*, const char*> kCleanUps[] = {
        {" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"}, {" n't", "n't"},
        {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
    for (const auto& [before, after] : kCleanUps) text = replace_all(text, before, after);
    return text;
}

}  // namespace p2s
