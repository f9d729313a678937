// The engine end to end on a converted model folder (P2S_TEST_MODEL, P2S_TEST_IMAGE: set by
// tests/test_native.py to the tiny test model). Token parity with Python is tested there.
#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>

#include "pix2struct/engine.hpp"

namespace {

class EngineTest : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        const char* model = std::getenv("P2S_TEST_MODEL");
        if (model != nullptr) {
            p2s::EngineOptions options;
            options.threads = 1;
            engine = std::make_unique<p2s::Engine>(model, options);
        }
    }
    static void TearDownTestSuite() { engine.reset(); }
    void SetUp() override {
        if (!engine || std::getenv("P2S_TEST_IMAGE") == nullptr) GTEST_SKIP() << "P2S_TEST_MODEL/P2S_TEST_IMAGE not set";
        image = std::getenv("P2S_TEST_IMAGE");
    }
    static std::unique_ptr<p2s::Engine> engine;
    std::string image;
};
std::unique_ptr<p2s::Engine> EngineTest::engine;

TEST_F(EngineTest, BatchEqualsSingleAnswersAndStopsAtEos) {
    const p2s::Answer one = engine->answer(image, "What is the total?");
    const p2s::Answer two = engine->answer(image, "Who is the sender?");
    const auto batch = engine->answer_batch({{image, "What is the total?"}, {image, "Who is the sender?"}});
    ASSERT_EQ(batch.size(), 2u);
    EXPECT_EQ(batch[0].token_ids, one.token_ids);
    EXPECT_EQ(batch[1].token_ids, two.token_ids);
    EXPECT_EQ(batch[0].batch_size, 2);
    ASSERT_FALSE(one.token_ids.empty());
    EXPECT_LE(one.token_ids.size(), static_cast<size_t>(engine->info().max_new_tokens));
    // Nothing after the first EOS (id 1).
    for (size_t i = 0; i + 1 < one.token_ids.size(); ++i) EXPECT_NE(one.token_ids[i], 1);
    EXPECT_GT(one.timings.encoder, 0.0);
    EXPECT_GE(one.timings.total, one.timings.encoder + one.timings.decode);
}

TEST_F(EngineTest, LimitsAndForcedLength) {
    EXPECT_EQ(engine->answer(image, "What is the total?", 2).token_ids.size(), 2u);
    const auto forced = engine->answer_batch({{image, "What is the total?"}}, 30, 30);
    EXPECT_EQ(forced[0].token_ids.size(), 30u);
    EXPECT_THROW(engine->answer(image, "What?", p2s::kMaxNewTokensCap + 1), p2s::InputError);
}

TEST_F(EngineTest, BadInputsAreInputErrors) {
    EXPECT_THROW(engine->answer("/nonexistent/page.png", "What?"), p2s::InputError);
    EXPECT_THROW(engine->answer(image, "   "), p2s::InputError);
    EXPECT_THROW(engine->answer(image, std::string(2001, 'a')), p2s::InputError);
    EXPECT_THROW(engine->answer(image, "\xff\xfe broken utf-8"), p2s::InputError);
    // The engine still answers after refusing input.
    EXPECT_FALSE(engine->answer(image, "What is the total?").token_ids.empty());
}

TEST(EngineFolder, MissingFolderIsAModelFolderError) {
    EXPECT_THROW(p2s::Engine("/nonexistent/model"), p2s::ModelFolderError);
}

}  // namespace
