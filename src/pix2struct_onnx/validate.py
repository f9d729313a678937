"""Conversion-time proof that the ONNX folder answers like PyTorch and transformers.

Four checks on a sample (document image + question), each against a stated tolerance:
1. preprocessing: this package's numpy/Pillow patches vs Pix2StructImageProcessor;
2. encoder: encoder states and every cross-attention K/V, ONNX vs PyTorch on the same patches;
3. logits: per decoding step, ONNX (with its KV cache) vs PyTorch teacher-forced on the same tokens;
4. answer: the greedy token sequence of ONNX equals transformers' generate, token for token.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from .decoding import greedy_decode
from .folder import ModelFolder
from .pipeline import DocumentQA, Query, trim_generated


@dataclass(frozen=True)
class Tolerances:
    """Maximum absolute differences accepted (fp32 graphs; values are relative to each tensor's scale)."""

    preprocess: float = 1e-5   # standardised pixel units (values span about -2..+3)
    encoder: float = 1e-3      # scaled by max(1, max |reference|)
    logits: float = 1e-3       # scaled by max(1, max |reference logit|)


# int8 weights and activations: logits move by a few percent of their range; answers must not.
INT8_TOLERANCES = Tolerances(preprocess=1e-5, encoder=0.15, logits=0.15)
TOKEN_FAILURE = "greedy tokens differ from transformers' generate"
TEXT_FAILURE = "decoded answer text differs from transformers' batch_decode"


@dataclass
class FidelityReport:
    question: str
    tolerances: dict
    preprocess_max_abs_diff: float
    encoder_max_abs_diff: float
    encoder_scale: float
    logits_max_abs_diff: list[float]
    logits_scale: float
    top1_agreement: float
    reference_tokens: list[int]
    onnx_tokens: list[int]
    reference_answer: str
    onnx_answer: str
    failures: list[str] = field(default_factory=list)
    first_difference: int | None = None  # first step where the greedy tokens differ

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict:
        data = asdict(self)
        data["passed"] = self.passed
        return data


def check_fidelity(model, image_processor, tokenizer, folder: ModelFolder, image, question: str,
                   tolerances: Tolerances = Tolerances(), max_new_tokens: int | None = None,
                   progress=print) -> FidelityReport:
    """Run PyTorch and the ONNX folder on one sample and compare every stage.

    PyTorch runs first and keeps only numpy results, then ONNX Runtime loads: their activation peaks
    never overlap, which matters for the large model at 4096 patches.
    """
    import torch

    generation = folder.config.generation
    steps = max_new_tokens or generation.max_new_tokens
    # The image processor itself: Pix2StructProcessor would drop font_path.
    reference_inputs = image_processor(images=image, header_text=question, return_tensors="pt",
                                       font_path=str(folder.font_path),
                                       max_patches=folder.config.preprocess.max_patches)
    patches = reference_inputs["flattened_patches"]
    mask = reference_inputs["attention_mask"]

    progress(f"  PyTorch: encoder, generate ({steps} tokens at most), teacher-forced logits")
    with torch.inference_mode():
        encoder_outputs = model.encoder(flattened_patches=patches, attention_mask=mask)
        states = encoder_outputs.last_hidden_state
        reference = [states.numpy()]
        for layer in model.decoder.layer:
            attention = layer.encoder_decoder_attention.attention
            for projection in (attention.key, attention.value):
                out = projection(states)
                reference.append(out.view(out.shape[0], out.shape[1], attention.n_heads, -1).transpose(1, 2).numpy())
        # generate and the teacher-forced pass reuse the encoder outputs above.
        generated = model.generate(encoder_outputs=encoder_outputs, attention_mask=mask, max_new_tokens=steps,
                                   do_sample=False, num_beams=1, use_cache=True)
        forced = generated[:, :-1] if generated.shape[1] > 1 else generated  # start token + all but the last
        reference_logits = model(encoder_outputs=encoder_outputs, attention_mask=mask,
                                 decoder_input_ids=forced).logits[0].numpy()  # (T, V)
    del encoder_outputs, states
    reference_tokens = trim_generated(generated[0, 1:].numpy(), generation.eos_token_id)
    forced, mask = forced.numpy().astype(np.int64), mask.numpy()

    progress("  ONNX: preprocessing, encoder, greedy decoding, teacher-forced logits")
    qa = DocumentQA(folder.path)
    ours = qa.preprocess(Query(image, question))
    preprocess_diff = float(np.abs(ours - patches[0].numpy()).max())
    onnx_encoder = qa.sessions.encode_with_states(patches.numpy(), mask)  # the same patches as PyTorch
    encoder_diff = max(float(np.abs(o - r).max()) for o, r in zip(onnx_encoder, reference))
    encoder_scale = max(1.0, max(float(np.abs(r).max()) for r in reference))
    cross = dict(zip(qa.sessions.names.cross_names(), onnx_encoder[1:]))
    decoded = greedy_decode(qa.sessions, cross, mask, generation, steps, keep_logits=True)
    onnx_tokens = trim_generated(decoded.tokens[0], generation.eos_token_id)
    # All steps in one decoder call (T > 1, empty past): independent of where greedy paths part.
    onnx_logits = qa.sessions.decode_step(forced, mask, qa.sessions.empty_past(1), cross)[0][0]
    logits_diff = [float(np.abs(onnx_logits[i] - reference_logits[i]).max()) for i in range(len(reference_logits))]
    top1_agreement = float(np.mean(onnx_logits.argmax(-1) == reference_logits.argmax(-1)))
    # The KV-cache path too, over the steps where both greedy paths were fed the same tokens.
    shared = next((i for i, (a, b) in enumerate(zip(reference_tokens, onnx_tokens)) if a != b),
                  min(len(reference_tokens), len(onnx_tokens)))
    cached_diff = [float(np.abs(decoded.step_logits[i][0] - reference_logits[i]).max())
                   for i in range(min(shared + 1, len(decoded.step_logits), len(reference_logits)))]
    logits_diff = [max(a, b) for a, b in zip(logits_diff, cached_diff + [0.0] * len(logits_diff))]
    logits_scale = max(1.0, float(np.abs(reference_logits).max()))

    report = FidelityReport(
        question=question, tolerances=asdict(tolerances), preprocess_max_abs_diff=preprocess_diff,
        encoder_max_abs_diff=encoder_diff, encoder_scale=encoder_scale, logits_max_abs_diff=logits_diff,
        logits_scale=logits_scale, top1_agreement=top1_agreement, reference_tokens=reference_tokens,
        onnx_tokens=onnx_tokens,
        reference_answer=tokenizer.batch_decode([reference_tokens], skip_special_tokens=True)[0],
        onnx_answer=qa.detokenizer.decode(onnx_tokens))
    if preprocess_diff > tolerances.preprocess:
        report.failures.append(f"preprocessing differs by {preprocess_diff:.3g} > {tolerances.preprocess}")
    if encoder_diff > tolerances.encoder * encoder_scale:
        report.failures.append(f"encoder outputs differ by {encoder_diff:.3g} > {tolerances.encoder * encoder_scale:.3g}")
    worst = max(logits_diff, default=0.0)
    if worst > tolerances.logits * logits_scale:
        report.failures.append(f"logits differ by {worst:.3g} > {tolerances.logits * logits_scale:.3g}")
    if reference_tokens != onnx_tokens:
        first = next((i for i, (a, b) in enumerate(zip(reference_tokens, onnx_tokens)) if a != b),
                     min(len(reference_tokens), len(onnx_tokens)))
        report.first_difference = first
        report.failures.append(TOKEN_FAILURE)
    if report.reference_answer != report.onnx_answer:
        report.failures.append(TEXT_FAILURE)
    return report
