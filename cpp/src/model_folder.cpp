#include "model_folder.hpp"

#include <openssl/evp.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

namespace fs = std::filesystem;
using nlohmann::json;

namespace p2s {
namespace {

json read_json(const fs::path& path, const std::string& what) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        throw ModelFolderError(what + " " + path.string() + " is unreadable; re-run convert.py to rebuild the folder");
    }
    json data = json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (data.is_discarded()) {
        throw ModelFolderError(what + " " + path.string() +
                               " is unreadable (JSONDecodeError); re-run convert.py to rebuild the folder");
    }
    if (!data.is_object()) {
        throw ModelFolderError(what + " " + path.string() + " is not a JSON object; re-run convert.py");
    }
    return data;
}

// Reads key into field if present; a value of the wrong type is a damaged config.
template <typename T>
void read_field(const json& object, const char* key, T& field, const fs::path& where) {
    auto it = object.find(key);
    if (it == object.end()) return;
    try {
        field = it->get<T>();
    } catch (const json::exception&) {
        throw ModelFolderError(where.string() + " does not match the expected settings (" + key +
                               " has the wrong type); re-run convert.py");
    }
}

ModelConfig parse_config(const json& data, const fs::path& where) {
    ModelConfig config;
    for (const char* key : {"num_layers", "num_heads", "d_kv", "vocab_size"}) {
        if (!data.contains(key)) {
            throw ModelFolderError(where.string() + " does not match the expected settings (missing " +
                                   std::string(key) + "); re-run convert.py");
        }
    }
    read_field(data, "num_layers", config.num_layers, where);
    read_field(data, "num_heads", config.num_heads, where);
    read_field(data, "d_kv", config.d_kv, where);
    read_field(data, "vocab_size", config.vocab_size, where);
    read_field(data, "encoder_file", config.encoder_file, where);
    read_field(data, "decoder_file", config.decoder_file, where);
    if (auto it = data.find("preprocess"); it != data.end() && it->is_object()) {
        PreprocessConfig& p = config.preprocess;
        read_field(*it, "max_patches", p.max_patches, where);
        read_field(*it, "patch_height", p.patch_height, where);
        read_field(*it, "patch_width", p.patch_width, where);
        read_field(*it, "is_vqa", p.is_vqa, where);
        read_field(*it, "text_size", p.text_size, where);
        read_field(*it, "header_wrap_width", p.header_wrap_width, where);
        read_field(*it, "header_padding", p.header_padding, where);
        read_field(*it, "max_image_pixels", p.max_image_pixels, where);
    }
    if (auto it = data.find("generation"); it != data.end() && it->is_object()) {
        GenerationConfig& g = config.generation;
        read_field(*it, "decoder_start_token_id", g.decoder_start_token_id, where);
        read_field(*it, "eos_token_id", g.eos_token_id, where);
        read_field(*it, "pad_token_id", g.pad_token_id, where);
        read_field(*it, "max_new_tokens", g.max_new_tokens, where);
        read_field(*it, "clean_up_tokenization_spaces", g.clean_up_tokenization_spaces, where);
        read_field(*it, "default_question", g.default_question, where);
    }
    if (config.num_layers <= 0 || config.num_heads <= 0 || config.d_kv <= 0 || config.vocab_size <= 0 ||
        config.preprocess.max_patches <= 0 || config.preprocess.patch_height <= 0 ||
        config.preprocess.patch_width <= 0 || config.preprocess.text_size <= 0 ||
        config.preprocess.header_wrap_width <= 0 || config.preprocess.header_padding < 0 ||
        config.generation.max_new_tokens <= 0) {
        throw ModelFolderError(where.string() + " holds a dimension that is zero or negative; re-run convert.py");
    }
    return config;
}

}  // namespace

std::string sha256_of(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw ModelFolderError(path + " cannot be read; re-run convert.py");
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> context(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    EVP_DigestInit_ex(context.get(), EVP_sha256(), nullptr);
    std::vector<char> buffer(1 << 22);
    while (in) {
        in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
        EVP_DigestUpdate(context.get(), buffer.data(), static_cast<size_t>(in.gcount()));
    }
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    EVP_DigestFinal_ex(context.get(), digest, &length);
    static const char* hex = "0123456789abcdef";
    std::string out;
    for (unsigned int i = 0; i < length; ++i) {
        out += hex[digest[i] >> 4];
        out += hex[digest[i] & 15];
    }
    return out;
}

ModelFolder open_model_folder(const std::string& path, bool verify_checksums) {
    const fs::path folder(path);
    std::error_code error;
    if (!fs::is_directory(folder, error)) {
        throw ModelFolderError("model folder " + path + " does not exist; create it with 'python convert.py --output " +
                               path + "'");
    }
    const fs::path manifest_path = folder / "manifest.json";
    if (!fs::is_regular_file(manifest_path, error)) {
        throw ModelFolderError(path + " has no manifest.json: not a model folder written by convert.py; re-run convert.py");
    }
    const json manifest = read_json(manifest_path, "manifest");
    auto files = manifest.find("files");
    if (files == manifest.end() || !files->is_object() || files->empty()) {
        throw ModelFolderError(manifest_path.string() + " lists no files; re-run convert.py");
    }
    for (const auto& [name, entry] : files->items()) {
        if (!entry.is_object() || fs::path(name).filename().string() != name || name == "." || name == "..") {
            throw ModelFolderError(manifest_path.string() + " has an invalid entry '" + name + "'; re-run convert.py");
        }
        const fs::path file = folder / name;
        if (!fs::is_regular_file(file, error)) {
            throw ModelFolderError(file.string() + " is missing from the model folder; re-run convert.py");
        }
        const auto size = fs::file_size(file, error);
        const auto bytes = entry.find("bytes");
        if (bytes == entry.end() || !bytes->is_number_unsigned() || bytes->get<uintmax_t>() != size) {
            throw ModelFolderError(file.string() + " has " + std::to_string(size) + " bytes but the manifest says " +
                                   (bytes == entry.end() ? std::string("nothing") : bytes->dump()) +
                                   ": the file is damaged; re-run convert.py");
        }
        const bool is_graph = name.size() >= 5 && (name.rfind(".onnx") == name.size() - 5 ||
                                                   name.find(".onnx.data") != std::string::npos);
        if (verify_checksums || !is_graph) {
            const auto sha = entry.find("sha256");
            if (sha == entry.end() || !sha->is_string() || sha->get<std::string>() != sha256_of(file.string())) {
                throw ModelFolderError(file.string() + " does not match the SHA-256 in the manifest: the file is damaged "
                                       "or was edited; re-run convert.py");
            }
        }
    }
    const fs::path config_path = folder / "config.json";
    if (!fs::is_regular_file(config_path, error)) {
        throw ModelFolderError(path + " has no config.json; re-run convert.py");
    }
    const json config_data = read_json(config_path, "config");
    const auto version = config_data.find("format_version");
    if (version == config_data.end() || !version->is_number_integer() || version->get<int>() != kFormatVersion) {
        throw ModelFolderError(path + " uses model folder format " +
                               (version == config_data.end() ? std::string("None") : version->dump()) +
                               ", this version reads format " + std::to_string(kFormatVersion) + "; re-run convert.py");
    }
    ModelFolder result{path, parse_config(config_data, config_path)};
    for (const std::string& required : {result.config.encoder_file, result.config.decoder_file,
                                        std::string("tokenizer.json"), std::string("font.ttf"),
                                        std::string("config.json")}) {
        if (!files->contains(required)) {
            throw ModelFolderError("manifest of " + path + " does not list " + required + "; re-run convert.py");
        }
    }
    return result;
}

}  // namespace p2s
