// The two kinds of error the engine raises; anything else is a bug.
#pragma once

#include <stdexcept>

namespace p2s {

// A problem with what the caller passed (image, question, option): the CLI exits 2.
struct InputError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// A missing, damaged or incompatible model folder: the CLI exits 1.
struct ModelFolderError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

}  // namespace p2s
