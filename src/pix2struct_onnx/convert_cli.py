"""convert.py: Hugging Face Pix2Struct-DocVQA -> a checked ONNX model folder.

The folder is built in a hidden temporary folder beside the target and renamed into place only
after the fidelity check passes: an interrupted or failed conversion leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from .cli_common import OneLineParser, library_versions, run_main
from .errors import ConversionError, InputError
from .folder import (CONFIG_FILE, FONT_FILE, MANIFEST_FILE, MAX_NEW_TOKENS_CAP, TOKENIZER_FILE,
                     GenerationConfig, ModelConfig, PreprocessConfig, describe_files, open_model_folder)
from .source import DEFAULT_MODEL, fetch_font, resolve_model

PROG = "convert.py"
DEFAULT_OPSET = 17


def build_parser() -> OneLineParser:
    parser = OneLineParser(prog=PROG, description="Convert Pix2Struct-DocVQA from Hugging Face to an ONNX "
                                                  "model folder, and prove it answers like PyTorch.")
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help=f"Hub id or local Hugging Face folder (default {DEFAULT_MODEL})")
    parser.add_argument("--revision", default=None, help="Hub revision (branch, tag or commit)")
    parser.add_argument("--output", default="model", help="model folder to write (default ./model)")
    parser.add_argument("--font", default=None,
                        help="TrueType font for the question header (default: the Arial that transformers "
                             "downloads; needed offline)")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})")
    parser.add_argument("--force", action="store_true", help="replace a non-empty output folder")
    parser.add_argument("--max-new-tokens", type=int, default=None,
                        help="default answer length limit stored in the folder "
                             "(default: the model's generation config, as transformers' generate)")
    parser.add_argument("--quantize", choices=["none", "int8"], default="none",
                        help="int8: dynamic int8 weights (about a quarter of the size; CPU only)")
    parser.add_argument("--accept-int8-disagreement", action="store_true",
                        help="with --quantize int8: keep the folder even if it fails its check against PyTorch "
                             "(for benchmarks on random weights only; the manifest records passed=false)")
    return parser


class Progress:
    """Numbered stages with elapsed time, on stderr."""

    def __init__(self, total: int):
        self.total, self.index, self.started = total, 0, time.perf_counter()

    def stage(self, text: str) -> None:
        self.index += 1
        print(f"[{self.index}/{self.total}] {text} ({time.perf_counter() - self.started:.1f}s)",
              file=sys.stderr, flush=True)

    @staticmethod
    def detail(text: str) -> None:
        print(text, file=sys.stderr, flush=True)


@contextmanager
def staging_folder(target: Path, force: bool):
    """Yield a temporary folder beside target; move it to target on success, delete it otherwise."""
    if target.exists() and not target.is_dir():
        raise InputError(f"output {target} exists and is not a folder; choose another --output")
    if target.is_dir() and any(target.iterdir()) and not force:
        raise InputError(f"output folder {target} is not empty; pass --force to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    umask = os.umask(0)
    os.umask(umask)
    staging.chmod(0o777 & ~umask)  # mkdtemp makes it private; the folder is meant to be shared

    def on_term(signum, frame):  # SIGTERM unwinds like Ctrl-C so the cleanup below runs
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term) if _main_thread() else None
    try:
        yield staging
        for item in staging.iterdir():  # some writers (external data) create private files
            item.chmod(0o666 & ~umask)
        if target.exists():
            retired = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            target.rename(retired / "old")
            staging.rename(target)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def generation_settings(model, tokenizer, max_new_tokens: int | None) -> GenerationConfig:
    """Greedy settings as transformers' generate would use them for this checkpoint."""
    gen = model.generation_config
    if max_new_tokens is None:
        # generate() stops at max_new_tokens if set, else at max_length counting the start token.
        max_new_tokens = gen.max_new_tokens or max(1, (gen.max_length or 20) - 1)
    start = gen.decoder_start_token_id
    if start is None:
        start = model.config.decoder_start_token_id
    eos = gen.eos_token_id if gen.eos_token_id is not None else model.config.text_config.eos_token_id
    if isinstance(eos, list):
        eos = eos[0]
    pad = gen.pad_token_id if gen.pad_token_id is not None else model.config.text_config.pad_token_id
    return GenerationConfig(decoder_start_token_id=int(start), eos_token_id=int(eos), pad_token_id=int(pad),
                            max_new_tokens=min(int(max_new_tokens), MAX_NEW_TOKENS_CAP),
                            clean_up_tokenization_spaces=bool(getattr(tokenizer, "clean_up_tokenization_spaces", False)))


def convert(model: str, output: Path, font: str | None = None, opset: int = DEFAULT_OPSET, force: bool = False,
            revision: str | None = None, max_new_tokens: int | None = None, quantize: str = "none",
            accept_int8_disagreement: bool = False) -> dict:
    """Export, check and write the model folder; returns the manifest.

    quantize="int8" checks the fp32 export first, then quantizes and checks again with int8
    tolerances. accept_int8_disagreement (int8 only) keeps an int8 folder that fails its check
    (tokens or tolerances), with the figures and passed=false in the manifest: for benchmarks on
    random weights, whose near-uniform logits let any quantization move the argmax; never for a
    model that will answer real questions.
    """
    if not 14 <= opset <= 20:
        raise InputError(f"--opset {opset} is not supported; use a value from 14 to 20 (default {DEFAULT_OPSET})")
    if max_new_tokens is not None and not 1 <= max_new_tokens <= MAX_NEW_TOKENS_CAP:
        raise InputError(f"--max-new-tokens must be between 1 and {MAX_NEW_TOKENS_CAP}")
    if quantize not in ("none", "int8"):
        raise InputError(f"--quantize {quantize!r} is not supported; use int8")
    progress = Progress(total=6 if quantize == "none" else 8)
    with staging_folder(output, force) as staging:
        progress.stage(f"locating {model}")
        source = resolve_model(model, revision)
        progress.stage("loading the PyTorch model")
        try:  # the export extras; inference never imports these
            import onnx  # noqa: F401
            import torch  # noqa: F401
            from transformers import AutoTokenizer, Pix2StructForConditionalGeneration, Pix2StructImageProcessor
        except ImportError as exc:
            raise ConversionError(f"conversion needs the export extras ({exc.name} is missing): "
                                  "pip install torch==2.13.0 && pip install 'pix2struct-onnx[export]'") from None

        from .export import ModelDims, export_decoder, export_encoder
        from .sample import SAMPLE_QUESTION, draw_sample_document
        from .validate import INT8_TOLERANCES, Tolerances, check_fidelity

        try:
            hf_model = Pix2StructForConditionalGeneration.from_pretrained(source.path).eval()
            image_processor = Pix2StructImageProcessor.from_pretrained(source.path)
            tokenizer = AutoTokenizer.from_pretrained(source.path)
        except (OSError, ValueError) as exc:
            raise ConversionError(f"cannot load a Pix2Struct model from {source.path} "
                                  f"({str(exc).splitlines()[0][:200]})") from None
        if not getattr(tokenizer, "is_fast", False):
            raise ConversionError(f"{source.path} has no fast tokenizer (tokenizer.json); install sentencepiece "
                                  "and protobuf so transformers can convert it")
        font_origin = fetch_font(font, staging / FONT_FILE)
        tokenizer.backend_tokenizer.save(str(staging / TOKENIZER_FILE))

        dims = ModelDims.from_model(hf_model)
        config = ModelConfig(
            num_layers=dims.num_layers, num_heads=dims.num_heads, d_kv=dims.d_kv, vocab_size=dims.vocab_size,
            preprocess=PreprocessConfig(max_patches=int(image_processor.max_patches),
                                        patch_height=int(image_processor.patch_size["height"]),
                                        patch_width=int(image_processor.patch_size["width"]),
                                        is_vqa=bool(image_processor.is_vqa)),
            generation=generation_settings(hf_model, tokenizer, max_new_tokens))
        if not config.preprocess.is_vqa:
            raise ConversionError(f"{model} is not a VQA checkpoint (is_vqa is false); "
                                  "this tool converts Pix2Struct DocVQA models")
        (staging / CONFIG_FILE).write_text(config.to_json(), encoding="utf-8")

        progress.stage(f"exporting encoder.onnx (opset {opset})")
        export_encoder(hf_model, staging / config.encoder_file, config.names, opset,
                       num_patches=min(config.preprocess.max_patches, 64))
        progress.stage(f"exporting decoder.onnx (opset {opset})")
        export_decoder(hf_model, staging / config.decoder_file, config.names, opset)

        weight_bytes = sum(p.numel() * p.element_size() for p in hf_model.parameters())
        manifest = {
            "format_version": config.format_version,
            "source": {"model": source.model_id, "revision": source.revision, "font": font_origin},
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "opset": opset,
            "precision": "fp32",
            "libraries": library_versions(),
            "python": platform.python_version(),
            "parameters": sum(p.numel() for p in hf_model.parameters()),
            "weight_bytes": weight_bytes,
        }
        image = draw_sample_document(staging / FONT_FILE)

        def check(tolerances: Tolerances, label: str, accept_failure: bool = False) -> dict:
            """Record the files in the manifest, then compare the folder with PyTorch on the sample."""
            files = describe_files(staging)
            manifest["files"] = files
            manifest["graph_bytes"] = sum(v["bytes"] for k, v in files.items() if ".onnx" in k)
            manifest["graph_overhead"] = manifest["graph_bytes"] / weight_bytes - 1.0
            (staging / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
            progress.stage(f"checking the {label} graphs against PyTorch on a sample document")
            report = check_fidelity(hf_model, image_processor, tokenizer, open_model_folder(staging), image,
                                    SAMPLE_QUESTION, tolerances=tolerances, progress=progress.detail)
            print_report(report, progress)
            if report.failures and accept_failure:
                progress.detail(f"  kept despite: {'; '.join(report.failures)} (--accept-int8-disagreement)")
            elif report.failures:
                raise ConversionError(f"the {label} graphs do not match PyTorch: " + "; ".join(report.failures)
                                      + "; nothing was written")
            return report.to_dict()

        manifest["fidelity"] = check(Tolerances(), "fp32")
        if quantize == "int8":
            progress.stage("quantizing both graphs to int8 (dynamic, per channel)")
            from .quantize import quantize_graph

            for name in (config.encoder_file, config.decoder_file):
                fp32_path = staging / name
                int8_path = staging / (name + ".int8")
                quantize_graph(fp32_path, int8_path)
                fp32_path.unlink()
                fp32_path.with_name(name + ".data").unlink(missing_ok=True)
                int8_path.rename(fp32_path)
            manifest["fidelity_fp32_export"] = manifest.pop("fidelity")
            manifest["precision"] = "int8"
            manifest["fidelity"] = check(INT8_TOLERANCES, "int8", accept_failure=accept_int8_disagreement)
        (staging / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        progress.stage(f"writing {output}")
    return manifest


def print_report(report, progress: Progress) -> None:
    worst_logits = max(report.logits_max_abs_diff, default=0.0)
    progress.detail(f"  preprocessing max |diff| {report.preprocess_max_abs_diff:.2e} "
                    f"(tolerance {report.tolerances['preprocess']:.0e})")
    progress.detail(f"  encoder max |diff| {report.encoder_max_abs_diff:.2e} "
                    f"(tolerance {report.tolerances['encoder'] * report.encoder_scale:.2e})")
    progress.detail(f"  logits max |diff| {worst_logits:.2e} over {len(report.logits_max_abs_diff)} steps "
                    f"(tolerance {report.tolerances['logits'] * report.logits_scale:.2e}); "
                    f"top-1 agreement {report.top1_agreement:.0%}")
    progress.detail(f"  tokens: ONNX {len(report.onnx_tokens)}, PyTorch {len(report.reference_tokens)}, "
                    f"identical: {report.onnx_tokens == report.reference_tokens}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    output = Path(args.output)
    manifest = convert(args.model, output, font=args.font, opset=args.opset, force=args.force,
                       revision=args.revision, max_new_tokens=args.max_new_tokens, quantize=args.quantize,
                       accept_int8_disagreement=args.accept_int8_disagreement)
    size_mb = sum(v["bytes"] for v in manifest["files"].values()) / 1e6
    print(f"wrote {output} ({size_mb:,.1f} MB); sample answer: {manifest['fidelity']['onnx_answer']!r}")
    return 0


def cli(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    return run_main(main, argv, PROG)


if __name__ == "__main__":
    sys.exit(cli())
