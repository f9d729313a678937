"""Greedy decoding with a KV cache: one new token per step, cross-attention K/V computed once."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .folder import MAX_NEW_TOKENS_CAP, GenerationConfig
from .runtime import Sessions


@dataclass
class DecodeResult:
    tokens: np.ndarray  # (B, N) generated ids, pad after EOS, like transformers' generate minus the start id
    step_logits: list[np.ndarray] = field(default_factory=list)  # N x (B, V), kept only on request
    step_seconds: list[float] = field(default_factory=list)


def greedy_decode(sessions: Sessions, cross: dict[str, np.ndarray], encoder_attention_mask: np.ndarray,
                  generation: GenerationConfig, max_new_tokens: int, keep_logits: bool = False,
                  min_new_tokens: int = 0, clock=None) -> DecodeResult:
    """Greedy search as transformers' generate(do_sample=False, num_beams=1) does it.

    min_new_tokens forbids EOS for that many steps, like generate(min_new_tokens=...); benchmarks
    use it to give every runtime the same number of steps.
    """
    clock = clock or time.perf_counter
    max_new_tokens = max(1, min(max_new_tokens, MAX_NEW_TOKENS_CAP))
    batch = encoder_attention_mask.shape[0]
    input_ids = np.full((batch, 1), generation.decoder_start_token_id, dtype=np.int64)  # (B, 1)
    past = sessions.empty_past(batch)
    finished = np.zeros(batch, dtype=bool)
    result = DecodeResult(tokens=np.zeros((batch, 0), dtype=np.int64))
    steps = []
    for _ in range(max_new_tokens):
        start = clock()
        logits, past = sessions.decode_step(input_ids, encoder_attention_mask, past, cross)
        last = logits[:, -1, :]  # (B, V)
        if len(steps) < min_new_tokens:
            last = last.copy()
            last[:, generation.eos_token_id] = -np.inf
        next_ids = np.where(finished, generation.pad_token_id, last.argmax(axis=-1)).astype(np.int64)
        steps.append(next_ids)
        if keep_logits:
            result.step_logits.append(last.copy())
        finished |= next_ids == generation.eos_token_id
        result.step_seconds.append(clock() - start)
        if finished.all():
            break
        input_ids = next_ids[:, None]
    result.tokens = np.stack(steps, axis=1)
    return result
