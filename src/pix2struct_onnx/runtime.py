"""ONNX Runtime sessions for the two graphs of a model folder (created once per process)."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

from .errors import InputError, ModelFolderError
from .folder import GraphNames, ModelFolder

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


# Settings a benchmark may vary to measure what each one buys; the defaults are the product's.
TUNING_DEFAULTS = {"graph_optimization": "all", "mem_pattern": False, "arena": True}
_LEVELS = {"disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
           "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
           "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
           "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}


def session_options(threads: int | None, tuning: dict | None = None) -> ort.SessionOptions:
    settings = {**TUNING_DEFAULTS, **(tuning or {})}
    options = ort.SessionOptions()
    options.graph_optimization_level = _LEVELS[settings["graph_optimization"]]
    if threads:
        options.intra_op_num_threads = threads
    options.log_severity_level = 3  # errors only: ORT's warnings are not the user's business
    # Memory patterns are planned per input shape and allocated beside the arena: with the growing
    # decoder cache they add 0.3-0.75 GB of peak memory; their effect on speed swung between 15%
    # faster and 28% slower across runs (benchmark.py --levers). Lower memory is the steadier win.
    options.enable_mem_pattern = settings["mem_pattern"]
    options.enable_cpu_mem_arena = settings["arena"]
    return options


def resolve_providers(provider: str) -> list[str]:
    if provider not in PROVIDERS:
        raise InputError(f"unknown provider {provider!r}; choose one of {', '.join(PROVIDERS)}")
    name = PROVIDERS[provider]
    if name not in ort.get_available_providers():
        raise InputError(f"ONNX Runtime here has no {name} (available: {', '.join(ort.get_available_providers())}); "
                         "for CUDA install onnxruntime-gpu instead of onnxruntime")
    return [name] if name == "CPUExecutionProvider" else [name, "CPUExecutionProvider"]


def _load(path, options, providers) -> ort.InferenceSession:
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as exc:  # ORT raises its own Fail/InvalidGraph types for damaged files
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise ModelFolderError(f"{path} cannot be loaded by ONNX Runtime ({first_line[:200]}); "
                               "re-run convert.py") from None


class Sessions:
    """encoder.onnx and decoder.onnx, with the shapes the decoding loop needs."""

    def __init__(self, folder: ModelFolder, threads: int | None = None, provider: str = "cpu",
                 tuning: dict | None = None):
        options = session_options(threads, tuning)
        providers = resolve_providers(provider)
        self.config = folder.config
        self.names: GraphNames = folder.config.names
        self.encoder = _load(folder.encoder_path, options, providers)
        self.decoder = _load(folder.decoder_path, options, providers)
        self._encoder_outputs = [self.names.encoder_hidden_states, *self.names.cross_names()]
        self._decoder_outputs = ["logits", *self.names.present_names()]
        for session, path, inputs, outputs in [
                (self.encoder, folder.encoder_path, ["flattened_patches", "attention_mask"], self._encoder_outputs),
                (self.decoder, folder.decoder_path,
                 ["input_ids", "encoder_attention_mask", *self.names.past_names(), *self.names.cross_names()],
                 self._decoder_outputs)]:
            if not (set(inputs) <= {i.name for i in session.get_inputs()}
                    and set(outputs) <= {o.name for o in session.get_outputs()}):
                raise ModelFolderError(f"{path} does not have the inputs and outputs config.json describes; "
                                       "re-run convert.py")

    def encode(self, flattened_patches: np.ndarray, attention_mask: np.ndarray) -> dict[str, np.ndarray]:
        """(B, P, F), (B, P) -> cross-attention keys/values per layer, each (B, H, P, d)."""
        outputs = self.encoder.run(self.names.cross_names(), {
            "flattened_patches": flattened_patches, "attention_mask": attention_mask})
        return dict(zip(self.names.cross_names(), outputs))

    def encode_with_states(self, flattened_patches, attention_mask) -> list[np.ndarray]:
        """Encoder states (B, P, D) followed by the cross K/V, for fidelity checks."""
        return self.encoder.run(self._encoder_outputs, {
            "flattened_patches": flattened_patches, "attention_mask": attention_mask})

    def empty_past(self, batch: int) -> dict[str, np.ndarray]:
        shape = (batch, self.config.num_heads, 0, self.config.d_kv)  # (B, H, 0, d)
        return {name: np.zeros(shape, dtype=np.float32) for name in self.names.past_names()}

    def decode_step(self, input_ids: np.ndarray, encoder_attention_mask: np.ndarray,
                    past: dict[str, np.ndarray], cross: dict[str, np.ndarray]):
        """(B, T) ids -> logits (B, T, V) and the present cache to feed back as past."""
        outputs = self.decoder.run(self._decoder_outputs, {
            "input_ids": input_ids, "encoder_attention_mask": encoder_attention_mask, **past, **cross})
        present = dict(zip(self.names.past_names(), outputs[1:]))
        return outputs[0], present
