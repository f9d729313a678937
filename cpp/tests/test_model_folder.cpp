// Broken model folders are refused with a one-line ModelFolderError, before any graph is read.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "model_folder.hpp"

namespace fs = std::filesystem;

namespace {

class ModelFolderTest : public ::testing::Test {
protected:
    void SetUp() override {
        dir = fs::path(::testing::TempDir()) / ("folder-" + std::to_string(::getpid()) + "-" +
                                                ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::remove_all(dir);
        fs::create_directories(dir);
        write("encoder.onnx", "E");
        write("decoder.onnx", "DD");
        write("tokenizer.json", "{}");
        write("font.ttf", "F");
        write("config.json", R"({"num_layers": 2, "num_heads": 2, "d_kv": 4, "vocab_size": 10, "format_version": 1,
                                 "generation": {"max_new_tokens": 5, "default_question": "Q?"}})");
        write_manifest();
    }
    void TearDown() override { fs::remove_all(dir); }

    void write(const std::string& name, const std::string& content) { std::ofstream(dir / name) << content; }
    void write_manifest() {
        std::string files;
        for (const char* name : {"encoder.onnx", "decoder.onnx", "tokenizer.json", "font.ttf", "config.json"}) {
            files += std::string(files.empty() ? "" : ",") + "\"" + name + "\": {\"bytes\": " +
                     std::to_string(fs::file_size(dir / name)) + ", \"sha256\": \"" +
                     p2s::sha256_of((dir / name).string()) + "\"}";
        }
        write("manifest.json", "{\"files\": {" + files + "}}");
    }
    std::string error_of() {
        try {
            p2s::open_model_folder(dir.string(), false);
        } catch (const p2s::ModelFolderError& error) {
            return error.what();
        }
        return "";
    }
    fs::path dir;
};

TEST_F(ModelFolderTest, AcceptsAConsistentFolder) {
    const p2s::ModelFolder folder = p2s::open_model_folder(dir.string(), true);
    EXPECT_EQ(folder.config.num_layers, 2);
    EXPECT_EQ(folder.config.generation.max_new_tokens, 5);
    EXPECT_EQ(folder.config.generation.default_question, "Q?");
    EXPECT_EQ(folder.config.preprocess.max_patches, 2048);  // default when absent
}

TEST_F(ModelFolderTest, Sha256OfAKnownString) {
    write("abc.txt", "abc");
    EXPECT_EQ(p2s::sha256_of((dir / "abc.txt").string()),
              "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST_F(ModelFolderTest, RefusesMissingFolderManifestAndFiles) {
    EXPECT_THROW(p2s::open_model_folder((dir / "nope").string(), false), p2s::ModelFolderError);
    fs::remove(dir / "font.ttf");
    EXPECT_NE(error_of().find("font.ttf is missing"), std::string::npos) << error_of();
    fs::remove(dir / "manifest.json");
    EXPECT_NE(error_of().find("has no manifest.json"), std::string::npos) << error_of();
}

TEST_F(ModelFolderTest, RefusesDamagedFiles) {
    write("decoder.onnx", "DDD");  // size changed
    EXPECT_NE(error_of().find("bytes but the manifest says"), std::string::npos) << error_of();
    write("decoder.onnx", "DX");  // same size, other content: caught only with verify
    EXPECT_NO_THROW(p2s::open_model_folder(dir.string(), false));
    EXPECT_THROW(p2s::open_model_folder(dir.string(), true), p2s::ModelFolderError);
    write("tokenizer.json", "[]");  // small files are always hashed
    EXPECT_NE(error_of().find("SHA-256"), std::string::npos) << error_of();
}

TEST_F(ModelFolderTest, RefusesBadConfig) {
    write("config.json", R"({"num_layers": 2, "num_heads": 2, "d_kv": 4, "vocab_size": 10, "format_version": 1})");
    write_manifest();
    // other valid contents -> accepted once the manifest matches
    EXPECT_EQ(error_of(), "");
    write("config.json", R"({"num_layers": 2, "num_heads": 2, "d_kv": 4, "vocab_size": 10, "format_version": 2})");
    write_manifest();
    EXPECT_NE(error_of().find("format 2"), std::string::npos) << error_of();
    write("config.json", R"({"num_layers": "two", "num_heads": 2, "d_kv": 4, "vocab_size": 10, "format_version": 1})");
    write_manifest();
    EXPECT_NE(error_of().find("wrong type"), std::string::npos) << error_of();
    write("config.json", "{");
    write_manifest();
    EXPECT_NE(error_of().find("unreadable"), std::string::npos) << error_of();
}

}  // namespace
