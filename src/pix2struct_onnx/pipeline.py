"""image + question -> answer: preprocessing, encoder, greedy decoding and detokenisation."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from .decoding import DecodeResult, greedy_decode
from .folder import MAX_NEW_TOKENS_CAP, open_model_folder
from .preprocessing import load_font, load_image, preprocess_image, stack_patches
from .runtime import Sessions
from .tokenizer import AnswerDecoder


@dataclass(frozen=True)
class Query:
    image: str | Path | Image.Image
    question: str


@dataclass
class Answer:
    image: str
    question: str
    answer: str
    token_ids: list[int]
    num_tokens: int
    # seconds; encoder and decode are for the whole batch the query ran in
    timings: dict[str, float] = field(default_factory=dict)
    batch_size: int = 1

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class BatchRun:
    """One batch through the pipeline: the decoding result and seconds per stage."""

    decoded: DecodeResult
    preprocess_seconds: list[float]  # per query
    encoder_seconds: float
    decode_seconds: float
    total_seconds: float


def trim_generated(tokens: np.ndarray, eos_id: int) -> list[int]:
    """Generated ids up to and including the first EOS (the padding after it dropped)."""
    ids = [int(t) for t in tokens]
    return ids[: ids.index(eos_id) + 1] if eos_id in ids else ids


class DocumentQA:
    """A loaded model folder that answers questions about document images."""

    def __init__(self, model_dir: str | Path, threads: int | None = None, provider: str = "cpu",
                 verify_checksums: bool = False, tuning: dict | None = None):
        self.folder = open_model_folder(model_dir, verify_checksums=verify_checksums)
        self.config = self.folder.config
        self.sessions = Sessions(self.folder, threads=threads, provider=provider, tuning=tuning)
        self.detokenizer = AnswerDecoder(self.folder.tokenizer_path,
                                         self.config.generation.clean_up_tokenization_spaces)
        self.font = load_font(self.folder.font_path, self.config.preprocess.text_size)

    @property
    def default_question(self) -> str:
        """What is asked when no question is given."""
        return self.config.generation.default_question

    def preprocess(self, query: Query) -> np.ndarray:
        """One query -> flattened patches (max_patches, 2 + ph*pw*3)."""
        image = query.image
        if not isinstance(image, Image.Image):
            image = load_image(image, self.config.preprocess.max_image_pixels)
        if image.mode != "RGB":
            image = image.convert("RGB")
        return preprocess_image(image, query.question, self.font, self.config.preprocess)

    def run_batch(self, queries: list[Query], max_new_tokens: int | None = None, min_new_tokens: int = 0,
                  keep_logits: bool = False) -> BatchRun:
        """Preprocess, encode once and decode the batch, timing each stage (answer_batch's engine)."""
        generation = self.config.generation
        limit = min(max_new_tokens or generation.max_new_tokens, MAX_NEW_TOKENS_CAP)
        start = time.perf_counter()
        per_item_preprocess, arrays = [], []
        for query in queries:
            t0 = time.perf_counter()
            arrays.append(self.preprocess(query))
            per_item_preprocess.append(time.perf_counter() - t0)
        patches = stack_patches(arrays)
        t0 = time.perf_counter()
        cross = self.sessions.encode(patches.flattened_patches, patches.attention_mask)
        encoder_seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        decoded = greedy_decode(self.sessions, cross, patches.attention_mask, generation, limit,
                                min_new_tokens=min_new_tokens, keep_logits=keep_logits)
        decode_seconds = time.perf_counter() - t0
        return BatchRun(decoded=decoded, preprocess_seconds=per_item_preprocess, encoder_seconds=encoder_seconds,
                        decode_seconds=decode_seconds, total_seconds=time.perf_counter() - start)

    def answer_batch(self, queries: list[Query], max_new_tokens: int | None = None,
                     min_new_tokens: int = 0) -> list[Answer]:
        """Answer queries together: one encoder run and one decoding loop for the batch."""
        run = self.run_batch(queries, max_new_tokens, min_new_tokens)
        answers = []
        for i, query in enumerate(queries):
            ids = trim_generated(run.decoded.tokens[i], self.config.generation.eos_token_id)
            answers.append(Answer(
                image=str(query.image) if not isinstance(query.image, Image.Image) else "<image>",
                question=query.question, answer=self.detokenizer.decode(ids), token_ids=ids,
                num_tokens=len(ids), batch_size=len(queries),
                timings={"preprocess": run.preprocess_seconds[i], "encoder": run.encoder_seconds,
                         "decode": run.decode_seconds, "total": run.total_seconds}))
        return answers

    def answer(self, image, question: str, max_new_tokens: int | None = None) -> Answer:
        return self.answer_batch([Query(image, question)], max_new_tokens)[0]
