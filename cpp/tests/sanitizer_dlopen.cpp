// Linked into sanitizer builds only (P2S_SANITIZE). OpenVINO's TBB dlopens libtbbbind with
// RTLD_DEEPBIND, which AddressSanitizer refuses (google/sanitizers#611) and aborts on. The binary's
// own dlopen comes first in symbol lookup: it drops that flag and calls the next dlopen (ASan's).
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>

extern "C" void* dlopen(const char* file, int mode) {
    using Dlopen = void* (*)(const char*, int);
    static const Dlopen next = reinterpret_cast<Dlopen>(dlsym(RTLD_NEXT, "dlopen"));
    return next(file, mode & ~RTLD_DEEPBIND);
}
