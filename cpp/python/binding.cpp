// Python module pix2struct_native._native: the engine, plus its preprocessing and decoding stages
// one by one so tests can compare each with the Python implementation.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <cstring>

#include "header.hpp"
#include "image_io.hpp"
#include "pix2struct/engine.hpp"
#include "preprocess.hpp"
#include "tokenizer.hpp"

namespace nb = nanobind;
using namespace nb::literals;

namespace {

using U8Image = nb::ndarray<const uint8_t, nb::numpy, nb::shape<-1, -1, 3>, nb::c_contig, nb::device::cpu>;

template <typename T>
nb::ndarray<T, nb::numpy> to_numpy(std::vector<T>&& values, std::initializer_list<size_t> shape) {
    auto* owned = new std::vector<T>(std::move(values));
    nb::capsule free_when_done(owned, [](void* p) noexcept { delete static_cast<std::vector<T>*>(p); });
    return nb::ndarray<T, nb::numpy>(owned->data(), shape, free_when_done);
}

nb::ndarray<uint8_t, nb::numpy> rgb_to_numpy(p2s::RgbImage&& image) {
    const size_t h = image.height, w = image.width;
    return to_numpy(std::move(image.pixels), {h, w, 3});
}

p2s::RgbImage rgb_from_numpy(const U8Image& array) {
    p2s::RgbImage image(static_cast<int>(array.shape(1)), static_cast<int>(array.shape(0)));
    std::memcpy(image.pixels.data(), array.data(), image.pixels.size());
    return image;
}

}  // namespace

NB_MODULE(_native, m) {
    m.doc() = "Native Pix2Struct-DocVQA engine (C++ and OpenVINO)";
    nb::exception<p2s::InputError>(m, "InputError");
    nb::exception<p2s::ModelFolderError>(m, "ModelFolderError");
    m.attr("MAX_NEW_TOKENS_CAP") = p2s::kMaxNewTokensCap;

    nb::class_<p2s::Answer>(m, "Answer")
        .def_ro("image", &p2s::Answer::image)
        .def_ro("question", &p2s::Answer::question)
        .def_ro("text", &p2s::Answer::text)
        .def_ro("token_ids", &p2s::Answer::token_ids)
        .def_ro("batch_size", &p2s::Answer::batch_size)
        .def_ro("step_seconds", &p2s::Answer::step_seconds)
        .def_prop_ro("timings", [](const p2s::Answer& a) {
            nb::dict t;
            t["preprocess"] = a.timings.preprocess;
            t["encoder"] = a.timings.encoder;
            t["decode"] = a.timings.decode;
            t["total"] = a.timings.total;
            return t;
        });

    nb::class_<p2s::Engine>(m, "Engine")
        .def("__init__",
             [](p2s::Engine* self, const std::string& model_dir, int threads, const std::string& device, bool verify,
                const std::string& cache_dir) {
                 p2s::EngineOptions options;
                 options.threads = threads;
                 options.device = device;
                 options.verify_checksums = verify;
                 options.cache_dir = cache_dir;
                 nb::gil_scoped_release release;
                 new (self) p2s::Engine(model_dir, options);
             },
             "model_dir"_a, "threads"_a = 0, "device"_a = "CPU", "verify"_a = false, "cache_dir"_a = "")
        .def("answer_batch",
             [](p2s::Engine& self, const std::vector<std::string>& images, const std::vector<std::string>& questions,
                int max_new_tokens, int min_new_tokens) {
                 if (images.size() != questions.size()) throw p2s::InputError("images and questions differ in number");
                 std::vector<p2s::Query> queries;
                 for (size_t i = 0; i < images.size(); ++i) queries.push_back({images[i], questions[i]});
                 nb::gil_scoped_release release;
                 return self.answer_batch(queries, max_new_tokens, min_new_tokens);
             },
             "images"_a, "questions"_a, "max_new_tokens"_a = 0, "min_new_tokens"_a = 0)
        .def("preprocess",
             [](const p2s::Engine& self, const std::string& image, const std::string& question) {
                 std::vector<float> patches;
                 {
                     nb::gil_scoped_release release;
                     patches = self.preprocess({image, question});
                 }
                 const size_t rows = static_cast<size_t>(self.info().max_patches);
                 const size_t features = patches.size() / rows;
                 return to_numpy(std::move(patches), {rows, features});
             },
             "image"_a, "question"_a)
        .def_prop_ro("default_question", [](const p2s::Engine& self) { return self.info().default_question; })
        .def_prop_ro("max_new_tokens", [](const p2s::Engine& self) { return self.info().max_new_tokens; });

    // Stages, for the cross-language tests.
    m.def("load_image", [](const std::string& path, int64_t max_pixels) {
        return rgb_to_numpy(p2s::load_image(path, max_pixels));
    }, "path"_a, "max_pixels"_a = 100000000);
    m.def("render_header",
          [](const U8Image& page, const std::string& question, const std::string& font_path, int size, int wrap_width,
             int padding) {
              p2s::HeaderFont font(font_path, size);
              return rgb_to_numpy(p2s::render_header(rgb_from_numpy(page), p2s::utf8_to_u32(question), font,
                                                     wrap_width, padding));
          },
          "page"_a, "question"_a, "font_path"_a, "size"_a = 36, "wrap_width"_a = 80, "padding"_a = 5);
    m.def("resize_bicubic", [](const U8Image& image, int width, int height) {
        return rgb_to_numpy(p2s::resize_bicubic(rgb_from_numpy(image), width, height));
    }, "image"_a, "width"_a, "height"_a);
    m.def("resize_bilinear_antialias",
          [](nb::ndarray<const float, nb::numpy, nb::shape<-1, -1, -1>, nb::c_contig, nb::device::cpu> image, int height,
             int width) {
              p2s::FloatImage in{static_cast<int>(image.shape(0)), static_cast<int>(image.shape(1)),
                                 static_cast<int>(image.shape(2)),
                                 std::vector<float>(image.data(), image.data() + image.size())};
              p2s::FloatImage out = p2s::resize_bilinear_antialias(in, height, width);
              const size_t h = out.height, w = out.width, c = out.channels;
              return to_numpy(std::move(out.values), {h, w, c});
          },
          "image"_a, "height"_a, "width"_a);
    m.def("standardize", [](const U8Image& image) {
        p2s::FloatImage out = p2s::standardize(rgb_from_numpy(image));
        const size_t h = out.height, w = out.width;
        return to_numpy(std::move(out.values), {h, w, 3});
    }, "image"_a);
    m.def("wrap_question", [](const std::string& text, int width) {
        std::vector<std::string> lines;
        for (const auto& line : p2s::wrap_question(p2s::utf8_to_u32(text), width)) {
            lines.push_back(p2s::u32_to_utf8(line));
        }
        return lines;
    }, "text"_a, "width"_a);

    nb::class_<p2s::Detokenizer>(m, "Detokenizer")
        .def(nb::init<const std::string&, bool>(), "tokenizer_json"_a, "clean_up_spaces"_a = false)
        .def("decode", &p2s::Detokenizer::decode, "ids"_a);
}
