"""Native Pix2Struct-DocVQA engine (C++ with OpenVINO), built from cpp/ by scikit-build-core.

`Engine(model_dir, threads=0, device="CPU")` reads the folder convert.py writes;
`Engine.answer_batch(images, questions, max_new_tokens=0, min_new_tokens=0)` returns answers with
`.text`, `.token_ids` and `.timings`. Errors are `InputError` and `ModelFolderError`.
"""

from ._native import (  # noqa: F401
    MAX_NEW_TOKENS_CAP,
    Answer,
    Detokenizer,
    Engine,
    InputError,
    ModelFolderError,
    load_image,
    render_header,
    resize_bicubic,
    resize_bilinear_antialias,
    standardize,
    wrap_question,
)
