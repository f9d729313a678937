// Token ids -> answer text from a Hugging Face tokenizer.json, as tokenizer.AnswerDecoder does
// (tokenizers' decode(ids, skip_special_tokens=True), then transformers' optional clean-up).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "pix2struct/errors.hpp"

namespace p2s {

class Detokenizer {
public:
    // Parses the vocabulary, added tokens and decoder of tokenizer.json. Throws ModelFolderError
    // for a file that is unreadable or uses a decoder this engine does not implement.
    Detokenizer(const std::string& tokenizer_json_path, bool clean_up_spaces);
    ~Detokenizer();

    std::string decode(const std::vector<int64_t>& ids) const;

    struct Impl;

private:
    std::unique_ptr<Impl> impl_;
};

// transformers' PreTrainedTokenizerBase.clean_up_tokenization.
std::string clean_up_tokenization(std::string text);

}  // namespace p2s
