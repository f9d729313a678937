// Runs the header code on given inputs so check_header.py can compare it with Python/Pillow.
//
//   check_header FONT SIZE WRAP PADDING PAGE.ppm QUESTION OUT.ppm   render_header -> OUT.ppm
//   check_header --text FONT SIZE WRAP PADDING QUESTION OUT.ppm      render_text -> OUT.ppm
//   check_header --wrap WIDTH            stdin: NUL-terminated UTF-8 texts; stdout: for each, its
//                                        wrap_question lines joined by "\n", NUL-terminated
//   check_header --missing FONT SIZE     stdin: UTF-8 text; stdout: missing code points, hex
//   check_header --resize W H IN.ppm OUT.ppm                         resize_bicubic -> OUT.ppm
//
// Images are binary PPM (P6, maxval 255). Exit status: 0, 2 on InputError, 1 on any other error;
// the error message goes to stderr.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <string>

#include "header.hpp"

namespace {

p2s::RgbImage read_ppm(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::string magic;
    int width = 0, height = 0, maxval = 0;
    if (!(in >> magic >> width >> height >> maxval) || magic != "P6" || maxval != 255 || width <= 0 ||
        height <= 0) {
        throw std::runtime_error(path + " is not a binary 8-bit PPM");
    }
    in.get();  // the single whitespace after maxval
    p2s::RgbImage image(width, height);
    if (!in.read(reinterpret_cast<char*>(image.pixels.data()), static_cast<std::streamsize>(image.pixels.size()))) {
        throw std::runtime_error(path + " is truncated");
    }
    return image;
}

void write_ppm(const std::string& path, const p2s::RgbImage& image) {
    std::ofstream out(path, std::ios::binary);
    out << "P6\n" << image.width << " " << image.height << "\n255\n";
    out.write(reinterpret_cast<const char*>(image.pixels.data()), static_cast<std::streamsize>(image.pixels.size()));
    if (!out) throw std::runtime_error("cannot write " + path);
}

int run(int argc, char** argv) {
    const std::string mode = argc > 1 ? argv[1] : "";
    if (mode == "--wrap" && argc == 3) {
        const int width = std::stoi(argv[2]);
        std::string record;
        while (std::getline(std::cin, record, '\0')) {
            std::string joined;
            for (const auto& line : p2s::wrap_question(p2s::utf8_to_u32(record), width)) {
                if (!joined.empty()) joined += '\n';
                joined += p2s::u32_to_utf8(line);
            }
            std::cout << joined << '\0';
        }
        return 0;
    }
    if (mode == "--missing" && argc == 4) {
        const p2s::HeaderFont font(argv[2], std::stoi(argv[3]));
        const std::string text((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
        for (char32_t c : font.missing_glyphs(p2s::utf8_to_u32(text))) std::printf("%X\n", static_cast<unsigned>(c));
        return 0;
    }
    if (mode == "--text" && argc == 8) {
        const p2s::HeaderFont font(argv[2], std::stoi(argv[3]));
        write_ppm(argv[7], p2s::render_text(p2s::utf8_to_u32(argv[6]), font, std::stoi(argv[4]), std::stoi(argv[5])));
        return 0;
    }
    if (mode == "--resize" && argc == 6) {
        write_ppm(argv[5], p2s::resize_bicubic(read_ppm(argv[4]), std::stoi(argv[2]), std::stoi(argv[3])));
        return 0;
    }
    if (argc == 8 && mode.rfind("--", 0) != 0) {
        const p2s::HeaderFont font(argv[1], std::stoi(argv[2]));
        const p2s::RgbImage page = read_ppm(argv[5]);
        write_ppm(argv[7], p2s::render_header(page, p2s::utf8_to_u32(argv[6]), font, std::stoi(argv[3]),
                                              std::stoi(argv[4])));
        return 0;
    }
    std::cerr << "usage: check_header FONT SIZE WRAP PADDING PAGE.ppm QUESTION OUT.ppm\n"
                 "       check_header --text FONT SIZE WRAP PADDING QUESTION OUT.ppm\n"
                 "       check_header --wrap WIDTH < NUL-terminated texts\n"
                 "       check_header --missing FONT SIZE < text\n"
                 "       check_header --resize WIDTH HEIGHT IN.ppm OUT.ppm\n";
    return 1;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const p2s::InputError& e) {
        std::cerr << "InputError: " << e.what() << "\n";
        return 2;
    } catch (const std::exception& e) {
        std::cerr << "error: " << e.what() << "\n";
        return 1;
    }
}
