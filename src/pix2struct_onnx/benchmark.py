"""benchmark.py: the Hugging Face model against its ONNX form, side by side in one run.

Each variant runs in its own process (load time and peak memory are its own) on the same image,
question, thread count and number of generated tokens (forced, as random weights would stop at
different points). Writes results.json (raw figures) and results.md (generated from it, with charts).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .cli_common import OneLineParser, library_versions, run_main
from .errors import ConversionError, InputError

PROG = "benchmark.py"


@dataclass(frozen=True)
class Variant:
    """One way of running the model: a label, a runner kind (bench_worker.RUNNERS, or "native" for the
    C++ worker pix2struct-bench-native) and its files."""

    name: str
    kind: str
    path: Path
    size_files: tuple[str, ...]  # the files that make up its size on disk (glob patterns)
    tuning: tuple[tuple[str, object], ...] = ()  # runtime settings that differ from the product's
    threads: int | None = None  # overrides the run's thread count (a lever)


def build_parser() -> OneLineParser:
    parser = OneLineParser(prog=PROG, description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--model", default=None, help="Hub id or local Hugging Face folder (real weights)")
    source.add_argument("--random-weights", action="store_true",
                        help="full-size model with random weights from the published configuration (offline)")
    source.add_argument("--quick", action="store_true", help="the tiny test model, 2 runs: exercises the harness")
    parser.add_argument("--image", default=None, help="document image (default: a page the project draws)")
    parser.add_argument("--question", default="What is the invoice number?")
    parser.add_argument("--font", default=None, help="header font (default: the converted folder's)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per variant after one warm-up (default 5)")
    parser.add_argument("--tokens", type=int, default=None, help="tokens generated per run (default: the model's 19)")
    parser.add_argument("--threads", type=int, default=None, help="threads for every variant (default: all cores)")
    parser.add_argument("--workdir", default=".bench", help="where models are built and converted (default .bench)")
    parser.add_argument("--output-dir", default=".", help="where results.json, results.md and charts go")
    parser.add_argument("--levers", action="store_true",
                        help="also run ONNX fp32 with one runtime setting changed at a time, to show what each buys")
    return parser


def folder_bytes(path: Path, patterns: tuple[str, ...]) -> tuple[int, list[str]]:
    files = sorted({p for pattern in patterns for p in path.glob(pattern) if p.is_file()})
    return sum(p.stat().st_size for p in files), [p.name for p in files]


def summarize(values: list[float]) -> dict:
    array = np.asarray(values, dtype=np.float64)
    return {"median": float(np.median(array)), "p90": float(np.percentile(array, 90)),
            "min": float(array.min()), "max": float(array.max()), "n": int(array.size)}


def encoder_gflop(config: dict, patches: int) -> float:
    """Floating-point work of one encoder pass (multiply-add = 2 FLOP), from the HF config."""
    vision, text = config["vision_config"], config["text_config"]
    d, ff, layers = vision["hidden_size"], vision["d_ff"], vision["num_hidden_layers"]
    inner = vision["num_attention_heads"] * vision["d_kv"]
    per_layer = 2 * patches * (3 * d * inner + inner * d)   # Q, K, V, output projections
    per_layer += 2 * 2 * patches * patches * inner           # scores and weighted sum
    per_layer += 2 * patches * 3 * d * ff                    # gated-GELU feed-forward (wi_0, wi_1, wo)
    embed = 2 * patches * vision["patch_embed_hidden_size"] * d
    cross = 2 * patches * d * text["hidden_size"] * 2 * text["num_layers"]  # cross K/V per decoder layer
    return (layers * per_layer + embed + cross) / 1e9


def machine_info() -> dict:
    info = {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count()}
    try:
        text = Path("/proc/cpuinfo").read_text()
        fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
        fields = {k.strip(): v.strip() for k, v in fields.items()}
        flags = set(fields.get("flags", "").split())
        info["cpu"] = fields.get("model name", "unknown")
        info["mhz"] = float(fields.get("cpu MHz", 0) or 0)
        info["isa"] = sorted(f for f in flags if f in {"avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16",
                                                      "amx_tile", "amx_int8", "amx_bf16", "avx_vnni"})
    except OSError:
        info.update(cpu=platform.processor() or "unknown", mhz=0.0, isa=[])
    # fp32 FLOP per cycle per core: 2 FMA units x vector lanes x 2; an assumption stated in the report.
    lanes = 16 if "avx512f" in info["isa"] else 8 if "avx2" in info["isa"] else 4
    info["peak_gflops_fp32"] = info["cpus"] * info["mhz"] / 1000 * 2 * lanes * 2
    info["peak_assumption"] = f"{info['cpus']} cores x {info['mhz'] / 1000:.2f} GHz x 2 FMA units x {lanes} fp32 lanes x 2"
    return info


def logit_error(fp32_logits, fp32_tokens, int8_logits, int8_tokens) -> dict:
    """Per-step max |int8 - fp32| logit, over the steps both were fed the same tokens."""
    shared = next((i for i, (a, b) in enumerate(zip(fp32_tokens, int8_tokens)) if a != b), len(fp32_tokens))
    steps = min(shared + 1, len(fp32_logits), len(int8_logits))
    # EOS is suppressed (-inf) while the length is forced: compare the finite logits only.
    finite = np.isfinite(fp32_logits[:steps]) & np.isfinite(int8_logits[:steps])
    errors = [float(np.abs(fp32_logits[i][finite[i]] - int8_logits[i][finite[i]]).max()) for i in range(steps)]
    return {"per_step_max_abs": errors, "steps_compared": steps, "first_token_difference":
            shared if shared < len(fp32_tokens) else None, "fp32_logit_range": float(np.abs(fp32_logits[np.isfinite(fp32_logits)]).max())}


def native_worker() -> Path:
    """The C++ benchmark worker the native engine's wheel installs beside this Python."""
    return Path(sysconfig.get_path("scripts")) / "pix2struct-bench-native"


def run_variant(variant: Variant, args, image: Path, font: Path, tokens: int, threads: int,
                logits_out: Path | None) -> dict:
    common = ["--path", str(variant.path), "--image", str(image), "--question", args.question,
              "--tokens", str(tokens), "--runs", str(args.runs), "--threads", str(variant.threads or threads)]
    if variant.kind == "native":
        # A process without Python: load time and memory are the engine's own.
        command = [str(native_worker()), *common]
        cache_dir = dict(variant.tuning).get("cache_dir")
        if cache_dir:
            command += ["--cache-dir", str(cache_dir)]
        command += ["--spawned-at", repr(time.time())]
    else:
        command = [sys.executable, "-m", "pix2struct_onnx.bench_worker", "--kind", variant.kind, *common,
                   "--font", str(font), "--spawned-at", repr(time.time())]
        if logits_out:
            command += ["--logits-out", str(logits_out)]
        command += ["--tuning", json.dumps(dict(variant.tuning))]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), TOKENIZERS_PARALLELISM="false")
    src = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    process = subprocess.run(command, stdout=subprocess.PIPE, stderr=None, text=True, env=env)
    if process.returncode != 0:
        raise InputError(f"variant {variant.name!r} failed (exit {process.returncode}); see the output above")
    return json.loads(process.stdout.strip().splitlines()[-1])


def native_unavailable() -> str | None:
    """None if the C++ engine's benchmark worker is installed, else why not."""
    if not native_worker().is_file():
        return f"{native_worker()} is not installed; build the native engine with 'pip install ./cpp'"
    return None


def prepare_models(args, workdir: Path) -> tuple[Path, Path, Path | None, str | None, str]:
    """Hugging Face folder, fp32 and int8 ONNX folders (None with the reason if int8 was refused),
    and a sentence on which weights they hold."""
    from .convert_cli import convert
    from .random_model import build_random_model

    workdir.mkdir(parents=True, exist_ok=True)
    font = args.font
    if args.quick or args.random_weights:
        size = "tiny" if args.quick else "full"
        hf_dir = workdir / f"random-{size}-hf"
        if not (hf_dir / "config.json").is_file():
            print(f"building a {size} model with random weights in {hf_dir}", file=sys.stderr)
            build_random_model(hf_dir, size=size)
        if font is None:  # offline: the TrueType font embedded in Pillow
            from PIL import ImageFont

            font = str(workdir / "pillow-default.ttf")
            Path(font).write_bytes(ImageFont.load_default(size=36).font_bytes)
        weights = ("random weights, tiny test architecture" if args.quick else
                   "random weights with the published google/pix2struct-docvqa-base architecture "
                   "(same parameter count, file sizes and compute; answers are meaningless)")
        model = str(hf_dir)
    else:
        from .source import resolve_model

        model = args.model or "google/pix2struct-docvqa-base"
        hf_dir = resolve_model(model).path
        weights = f"real weights: {model}"
    onnx_dir = workdir / (Path(model).name + "-onnx")
    if not (onnx_dir / "manifest.json").is_file():
        print(f"converting {model} to {onnx_dir}", file=sys.stderr)
        convert(model, onnx_dir, font=font, force=True)
    int8_dir, int8_refused = workdir / (Path(model).name + "-onnx-int8"), None
    if not (int8_dir / "manifest.json").is_file():
        print(f"converting {model} to {int8_dir} (int8)", file=sys.stderr)
        # Random weights give near-uniform logits whose argmax any quantization moves; the
        # disagreement is recorded and reported instead of stopping the benchmark. Real weights
        # keep the check: a refused int8 folder is reported and the other variants still run.
        try:
            convert(model, int8_dir, font=font, force=True, quantize="int8",
                    accept_int8_disagreement=args.quick or args.random_weights)
        except ConversionError as exc:
            int8_dir, int8_refused = None, str(exc)
            print(f"int8 variant skipped: {exc}", file=sys.stderr)
    return hf_dir, onnx_dir, int8_dir, int8_refused, weights


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.runs < 1:
        raise InputError("--runs must be at least 1")
    if args.quick:
        args.runs = min(args.runs, 2)
    workdir = Path(args.workdir)
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    hf_dir, onnx_dir, int8_dir, int8_refused, weights = prepare_models(args, workdir)

    from .folder import open_model_folder
    from .sample import draw_sample_document

    folder = open_model_folder(onnx_dir)
    font = Path(args.font) if args.font else folder.font_path
    if args.image:
        image = Path(args.image)
        if not image.is_file():
            raise InputError(f"image {image} does not exist")
    else:
        image = workdir / "sample-invoice.png"
        draw_sample_document(font).save(image)
    tokens = args.tokens or folder.config.generation.max_new_tokens
    threads = args.threads or os.cpu_count() or 1

    variants = [
        Variant("PyTorch fp32 (transformers)", "pytorch", hf_dir, ("*.safetensors", "*.bin")),
        Variant("ONNX Runtime fp32", "onnxruntime", onnx_dir, ("*",)),
    ]
    if int8_dir is not None:
        variants.append(Variant("ONNX Runtime int8", "onnxruntime", int8_dir, ("*",)))
    native_missing = native_unavailable()
    if native_missing is None:
        variants.append(Variant("Native C++ fp32 (OpenVINO)", "native", onnx_dir, ("*",)))
        if int8_dir is not None:
            variants.append(Variant("Native C++ int8 (OpenVINO)", "native", int8_dir, ("*",)))
        # The same engine started with a warm compiled-model cache (--cache-dir): load time and memory.
        cache = workdir / "openvino-cache"
        variants.append(Variant("Native C++ fp32, warm cache", "native", onnx_dir, ("*",),
                                tuning=(("cache_dir", str(cache)),)))
    else:
        print(f"native engine variants skipped: {native_missing}", file=sys.stderr)
    hf_config = json.loads((hf_dir / "config.json").read_text())
    gflop = encoder_gflop(hf_config, folder.config.preprocess.max_patches)
    results = {"weights": weights, "command": " ".join([PROG, *(argv if argv is not None else sys.argv[1:])]),
               "created": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine_info(),
               "libraries": library_versions(), "image": image.name, "question": args.question,
               "tokens": tokens, "threads": threads, "runs": args.runs, "encoder_gflop": gflop,
               "max_patches": folder.config.preprocess.max_patches, "variants": [],
               "int8_refused": int8_refused, "native_missing": native_missing}
    reference_tokens = None
    step_logits = {}

    def measure(variant: Variant, logits_path: Path | None = None) -> dict:
        nonlocal reference_tokens
        print(f"[{variant.name}] {args.runs} runs after a warm-up", file=sys.stderr, flush=True)
        raw = run_variant(variant, args, image, font, tokens, threads, logits_path)
        size, files = folder_bytes(variant.path, variant.size_files)
        runs = raw["runs"]
        steps = [s for r in runs for s in r["steps"]]
        token_ids = runs[0]["tokens"]
        if reference_tokens is None:
            reference_tokens = token_ids
        first_difference = next((i for i, (a, b) in enumerate(zip(token_ids, reference_tokens)) if a != b), None)
        encoder = summarize([r["encoder"] for r in runs])
        return {
            "name": variant.name, "kind": variant.kind, "size_bytes": size, "files": files,
            "tuning": dict(variant.tuning), "threads": variant.threads or threads,
            "load_seconds": raw["load_seconds"], "peak_rss_bytes": raw["peak_rss_bytes"],
            "preprocess": summarize([r["preprocess"] for r in runs]), "encoder": encoder,
            "decode_step": summarize(steps), "decode": summarize([sum(r["steps"]) for r in runs]),
            "total": summarize([r["total"] for r in runs]),
            "tokens_per_second": len(runs[0]["steps"]) / float(np.median([sum(r["steps"]) for r in runs])),
            "encoder_gflops": gflop / encoder["median"],
            "token_ids": token_ids, "answer": runs[0].get("answer", ""), "identical_to_reference": first_difference is None
            and len(token_ids) == len(reference_tokens), "first_difference": first_difference,
            "runs_raw": runs,
        }

    results["failed_variants"] = {}
    for variant in variants:
        logits_path = workdir / f"logits-{variant.path.name}.npy" if variant.kind == "onnxruntime" else None
        try:
            if dict(variant.tuning).get("cache_dir"):
                print(f"[{variant.name}] filling the cache", file=sys.stderr, flush=True)
                run_variant(variant, argparse.Namespace(**{**vars(args), "runs": 1}), image, font, tokens, threads, None)
            results["variants"].append(measure(variant, logits_path))
        except InputError as exc:
            if variant.kind != "native":
                raise
            # A runtime that cannot run a folder (say, OpenVINO and an int8 graph) is a finding.
            results["failed_variants"][variant.name] = str(exc)
            print(f"{variant.name} failed: {exc}", file=sys.stderr)
            continue
        if logits_path:
            step_logits[variant.name] = (np.load(logits_path), results["variants"][-1]["token_ids"])
    if args.levers:
        # Each lever is the product's ONNX fp32 setting with one thing changed.
        levers = [
            Variant("ONNX fp32, as shipped", "onnxruntime", onnx_dir, ("*",)),
            Variant("1 thread instead of all cores", "onnxruntime", onnx_dir, ("*",), threads=1),
            Variant("graph optimisation: basic instead of all", "onnxruntime", onnx_dir, ("*",),
                    tuning=(("graph_optimization", "basic"),)),
            Variant("graph optimisation: none", "onnxruntime", onnx_dir, ("*",),
                    tuning=(("graph_optimization", "disable"),)),
            Variant("memory patterns on", "onnxruntime", onnx_dir, ("*",), tuning=(("mem_pattern", True),)),
            Variant("memory arena off", "onnxruntime", onnx_dir, ("*",), tuning=(("arena", False),)),
        ]
        results["levers"] = [measure(lever) for lever in levers]
    if {"ONNX Runtime fp32", "ONNX Runtime int8"} <= set(step_logits):
        results["int8_logit_error"] = logit_error(*step_logits["ONNX Runtime fp32"],
                                                  *step_logits["ONNX Runtime int8"])
    (output_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    from .report import write_report

    write_report(results, output_dir)
    print(f"wrote {output_dir / 'results.json'} and {output_dir / 'results.md'}")
    return 0


def cli(argv: list[str] | None = None) -> int:
    return run_main(main, argv, PROG)


if __name__ == "__main__":
    sys.exit(cli())
