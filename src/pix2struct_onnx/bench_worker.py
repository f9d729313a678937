"""One benchmark variant in its own process, so load time and peak memory are its own.

python -m pix2struct_onnx.bench_worker --kind KIND --path PATH ... prints one JSON object (the last
line of stdout). Each kind is a function that loads a model and returns a `run` callable doing one
timed question end to end; adding a runtime is adding one such function to RUNNERS.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

def peak_rss_bytes() -> int:
    """This process's peak resident memory.

    /proc/self/status VmHWM, not getrusage: Linux carries ru_maxrss across exec, so a worker started
    from a parent that holds a PyTorch model would report the parent's peak.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# A run returns: {"preprocess": s, "encoder": s, "steps": [s, ...], "total": s, "tokens": [ids], "answer": text}
Run = Callable[[], dict]


def load_pytorch(path: Path, image, question: str, tokens: int, threads: int, font: Path, tuning: dict):
    """transformers' Pix2StructForConditionalGeneration.generate: greedy, KV cache, inference_mode."""
    import torch
    from transformers import Pix2StructForConditionalGeneration, Pix2StructImageProcessor, StoppingCriteria

    torch.set_num_threads(threads)
    from transformers import AutoTokenizer

    model = Pix2StructForConditionalGeneration.from_pretrained(path).eval()
    processor = Pix2StructImageProcessor.from_pretrained(path)
    tokenizer = AutoTokenizer.from_pretrained(path)

    class StepClock(StoppingCriteria):  # called once after every decoding step
        def __init__(self):
            self.stamps = []

        def __call__(self, input_ids, scores, **kwargs):
            self.stamps.append(time.perf_counter())
            return torch.zeros(input_ids.shape[0], dtype=torch.bool)

    def run() -> dict:
        clock = StepClock()
        t0 = time.perf_counter()
        inputs = processor(images=image, header_text=question, font_path=str(font), return_tensors="pt")
        t1 = time.perf_counter()
        with torch.inference_mode():
            encoded = model.encoder(flattened_patches=inputs["flattened_patches"],
                                    attention_mask=inputs["attention_mask"])
            t2 = time.perf_counter()
            out = model.generate(encoder_outputs=encoded, attention_mask=inputs["attention_mask"],
                                 max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False, num_beams=1,
                                 use_cache=True, stopping_criteria=[clock])
        t3 = time.perf_counter()
        stamps = [t2] + clock.stamps
        return {"preprocess": t1 - t0, "encoder": t2 - t1, "steps": list(np.diff(stamps)), "total": t3 - t0,
                "tokens": out[0, 1:].tolist(), "answer": tokenizer.decode(out[0], skip_special_tokens=True)}

    return run, None


def load_onnxruntime(path: Path, image, question: str, tokens: int, threads: int, font: Path, tuning: dict):
    """This package's pipeline on ONNX Runtime: the code path of inference.py (DocumentQA.run_batch)."""
    from .pipeline import DocumentQA, Query

    qa = DocumentQA(path, threads=threads, tuning=tuning)
    logits = []

    def run() -> dict:
        batch = qa.run_batch([Query(image, question)], max_new_tokens=tokens, min_new_tokens=tokens,
                             keep_logits=not logits)
        if batch.decoded.step_logits:
            logits.extend(batch.decoded.step_logits)
        ids = batch.decoded.tokens[0].tolist()
        return {"preprocess": batch.preprocess_seconds[0], "encoder": batch.encoder_seconds,
                "steps": batch.decoded.step_seconds, "total": batch.total_seconds, "tokens": ids,
                "answer": qa.detokenizer.decode(ids)}

    return run, logits


# The native engine has a worker of its own, the C++ program pix2struct-bench-native (benchmark.py).
RUNNERS = {"pytorch": load_pytorch, "onnxruntime": load_onnxruntime}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kind", choices=sorted(RUNNERS), required=True)
    parser.add_argument("--path", required=True)
    parser.add_argument("--image", required=True)
    parser.add_argument("--question", required=True)
    parser.add_argument("--font", required=True)
    parser.add_argument("--tokens", type=int, required=True)
    parser.add_argument("--runs", type=int, required=True)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--spawned-at", type=float, required=True, help="parent's time.time() at spawn")
    parser.add_argument("--logits-out", default=None, help="save the first run's step logits (.npy)")
    parser.add_argument("--tuning", default="{}", help="JSON of runtime settings to vary (runtime.TUNING_DEFAULTS)")
    args = parser.parse_args(argv)

    from PIL import Image

    image = Image.open(args.image).convert("RGB")
    run, logits = RUNNERS[args.kind](Path(args.path), image, args.question, args.tokens, args.threads,
                                     Path(args.font), json.loads(args.tuning))
    ready = time.time() - args.spawned_at
    warmup = run()
    runs = []
    for index in range(args.runs):
        runs.append(run())
        print(f"    run {index + 1}/{args.runs}: {runs[-1]['total']:.2f}s", file=sys.stderr, flush=True)
    if args.logits_out and logits:
        np.save(args.logits_out, np.stack([step[0] for step in logits]))
    print(json.dumps({"load_seconds": ready, "warmup": warmup, "runs": runs, "peak_rss_bytes": peak_rss_bytes()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
