// Detokenizer on small hand-written tokenizer.json files; expected strings are what the Python
// tokenizers package returns for the same files and ids (checked once, pasted here).
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "tokenizer.hpp"

namespace {

std::string write_temp(const std::string& name, const std::string& content) {
    const std::string path = ::testing::TempDir() + name;
    std::ofstream(path) << content;
    return path;
}

const char* kUnigramMetaspace = R"({
  "added_tokens": [{"id": 0, "content": "<pad>", "special": true}, {"id": 1, "content": "</s>", "special": true},
                   {"id": 2, "content": "<unk>", "special": true}, {"id": 7, "content": "<extra>", "special": false}],
  "decoder": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": true},
  "model": {"type": "Unigram", "unk_id": 2, "vocab": [["<pad>", 0], ["</s>", 0], ["<unk>", 0], ["\u2581Hello", -1],
            ["\u2581world", -2], ["!", -3], ["\u2581", -4], ["<extra>", 0], ["a\u2581b", -5]]}
})";

TEST(Detokenizer, MetaspaceDropsTheFirstPrefixAndSpecialTokens) {
    p2s::Detokenizer tokenizer(write_temp("metaspace.json", kUnigramMetaspace), false);
    EXPECT_EQ(tokenizer.decode({0, 3, 4, 5, 1}), "Hello world!");
    EXPECT_EQ(tokenizer.decode({4, 3}), "world Hello");
    // Every replacement inside the first token is dropped, as in tokenizers' Metaspace decoder.
    EXPECT_EQ(tokenizer.decode({8, 8}), "aba b");
    EXPECT_EQ(tokenizer.decode({}), "");
    EXPECT_EQ(tokenizer.decode({1}), "");
    // Non-special added tokens are kept; unknown ids are dropped.
    EXPECT_EQ(tokenizer.decode({3, 7, 999, -5}), "Hello<extra>");
}

TEST(Detokenizer, CleanUpJoinsPunctuation) {
    p2s::Detokenizer tokenizer(write_temp("metaspace.json", kUnigramMetaspace), true);
    EXPECT_EQ(p2s::clean_up_tokenization("a . b , c ' d do n't I 'm"), "a. b, c'd don't I'm");
}

TEST(Detokenizer, ByteFallbackFuseStripSequence) {
    const char* json = R"({
      "added_tokens": [],
      "decoder": {"type": "Sequence", "decoders": [
         {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
         {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
      "model": {"type": "BPE", "vocab": {"\u2581hi": 0, "<0xE5>": 1, "<0x8F>": 2, "<0xAB>": 3, "x": 4}, "merges": []}
    })";
    p2s::Detokenizer tokenizer(write_temp("bytes.json", json), false);
    EXPECT_EQ(tokenizer.decode({0, 1, 2, 3, 4}), "hi\xE5\x8F\xAB" "x");
    // An incomplete UTF-8 sequence becomes one U+FFFD per byte.
    EXPECT_EQ(tokenizer.decode({0, 1, 2, 4}), "hi\xEF\xBF\xBD\xEF\xBF\xBDx");
}

TEST(Detokenizer, RejectsWhatItCannotDecode) {
    EXPECT_THROW(p2s::Detokenizer(write_temp("bad.json", "{not json"), false), p2s::ModelFolderError);
    EXPECT_THROW(p2s::Detokenizer(::testing::TempDir() + "does-not-exist.json", false), p2s::ModelFolderError);
    const char* other = R"({"decoder": {"type": "CTC"}, "model": {"type": "Unigram", "vocab": [["a", 0]]}})";
    try {
        p2s::Detokenizer(write_temp("ctc.json", other), false);
        FAIL() << "expected ModelFolderError";
    } catch (const p2s::ModelFolderError& error) {
        EXPECT_NE(std::string(error.what()).find("CTC"), std::string::npos);
    }
}

}  // namespace
