"""Token ids -> answer text with the Hugging Face `tokenizers` library (no transformers needed)."""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer

from .errors import ModelFolderError

# transformers' PreTrainedTokenizerBase.clean_up_tokenization, applied when the source tokenizer
# was saved with clean_up_tokenization_spaces=True, so answers match processor.batch_decode.
_CLEAN_UPS = [(" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
              (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")]


def clean_up_tokenization(text: str) -> str:
    for before, after in _CLEAN_UPS:
        text = text.replace(before, after)
    return text


class AnswerDecoder:
    """Decodes generated ids the way Pix2StructProcessor.batch_decode(skip_special_tokens=True) does."""

    def __init__(self, tokenizer_path: Path, clean_up_spaces: bool):
        try:
            self._tokenizer = Tokenizer.from_file(str(tokenizer_path))
        except Exception as exc:  # tokenizers raises a bare Exception for parse errors
            raise ModelFolderError(f"{tokenizer_path} is not a valid tokenizer file ({exc}); "
                                   "re-run convert.py") from None
        self._clean_up = clean_up_spaces

    def decode(self, ids: list[int]) -> str:
        text = self._tokenizer.decode(ids, skip_special_tokens=True)
        return clean_up_tokenization(text) if self._clean_up else text
