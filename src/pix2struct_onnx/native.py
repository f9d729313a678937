"""The native C++ engine (package pix2struct_native, built from cpp/) behind DocumentQA's interface.

Optional: `pip install ./cpp` builds it. Without it, `--engine native` says so in one line and
inference.py's default engine (ONNX Runtime) keeps working.
"""

from __future__ import annotations

from pathlib import Path

from .errors import InputError, ModelFolderError
from .pipeline import Answer, Query


def import_native():
    """The pix2struct_native module, or an InputError saying how to get it."""
    try:
        import pix2struct_native
    except ImportError as exc:
        raise InputError(f"the native engine is not installed ({exc}); build it with 'pip install ./cpp' "
                         "(see README), or leave out --engine native to use ONNX Runtime") from None
    return pix2struct_native


class NativeDocumentQA:
    """A model folder loaded by the C++ engine (OpenVINO); answers like DocumentQA.answer_batch."""

    def __init__(self, model_dir: str | Path, threads: int | None = None, verify_checksums: bool = False,
                 device: str = "CPU"):
        self.native = import_native()
        # The engine checks the folder itself (manifest, sizes, SHA-256), as open_model_folder does.
        self.engine = self._call(self.native.Engine, str(model_dir), threads or 0, device, verify_checksums)

    @property
    def default_question(self) -> str:
        return self.engine.default_question

    def _call(self, function, *args, **kwargs):
        try:
            return function(*args, **kwargs)
        except self.native.InputError as exc:
            raise InputError(str(exc)) from None
        except self.native.ModelFolderError as exc:
            raise ModelFolderError(str(exc)) from None

    def answer_batch(self, queries: list[Query], max_new_tokens: int | None = None,
                     min_new_tokens: int = 0) -> list[Answer]:
        if any(not isinstance(q.image, (str, Path)) for q in queries):
            raise InputError("the native engine reads images from files; pass image paths")
        results = self._call(self.engine.answer_batch, [str(q.image) for q in queries],
                             [q.question for q in queries], max_new_tokens or 0, min_new_tokens)
        return [Answer(image=r.image, question=r.question, answer=r.text, token_ids=list(r.token_ids),
                       num_tokens=len(r.token_ids), timings=dict(r.timings), batch_size=r.batch_size)
                for r in results]

    def answer(self, image, question: str, max_new_tokens: int | None = None) -> Answer:
        return self.answer_batch([Query(image, question)], max_new_tokens)[0]
