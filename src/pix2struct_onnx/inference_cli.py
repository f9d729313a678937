"""inference.py: answer questions about document images with a converted model folder.

Imports only onnxruntime, numpy, Pillow and tokenizers (through the pipeline); with --engine native,
the C++ engine (pix2struct_native) instead.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .cli_common import OneLineParser, run_main
from .errors import InputError
from .folder import MAX_NEW_TOKENS_CAP
from .pipeline import DocumentQA, Query
from .preprocessing import check_question

PROG = "inference.py"


def build_parser() -> OneLineParser:
    parser = OneLineParser(
        prog=PROG,
        description="Answer questions about document images with a Pix2Struct-DocVQA ONNX model folder.",
        epilog="Pairing: one image with several -q asks each question of that image; several -i with one -q "
               "asks it of every image; equal counts pair them in order. Without -q the folder's default "
               "question is asked (printed on stderr).")
    parser.add_argument("-m", "--model", required=True, help="model folder written by convert.py")
    parser.add_argument("-i", "--image", action="append", default=[], help="image file (repeatable)")
    parser.add_argument("-q", "--question", action="append", default=[], help="question (repeatable)")
    parser.add_argument("--jsonl", help="JSON Lines file of {\"image\": PATH, \"question\": TEXT} objects; "
                                        "relative image paths are read from the file's folder")
    parser.add_argument("--batch-size", type=int, default=1, help="questions run together (default 1)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object per question: answer, token ids, timings, tokens")
    parser.add_argument("--max-new-tokens", type=int, default=None,
                        help=f"answer length limit in tokens (default from the folder, at most {MAX_NEW_TOKENS_CAP})")
    parser.add_argument("--threads", type=int, default=None, help="ONNX Runtime intra-op threads "
                                                                   "(default: ONNX Runtime's choice)")
    parser.add_argument("--provider", default="cpu", choices=["cpu", "cuda"],
                        help="execution provider (cuda needs onnxruntime-gpu)")
    parser.add_argument("--engine", default="onnxruntime", choices=["onnxruntime", "native"],
                        help="onnxruntime (default) or native: the C++ engine with OpenVINO, if built "
                             "(pip install ./cpp); it reads PNG and JPEG images")
    parser.add_argument("--verify", action="store_true",
                        help="also check the SHA-256 of the ONNX files against the manifest")
    return parser


def read_jsonl(path: Path) -> list[Query]:
    if not path.is_file():
        raise InputError(f"JSON Lines file {path} does not exist")
    queries = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {path} ({exc.__class__.__name__}); pass a UTF-8 JSON Lines file") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            image, question = item["image"], item["question"]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise InputError(f"{path}:{number} is not a JSON object with \"image\" and \"question\"") from None
        if not isinstance(image, str) or not isinstance(question, str):
            raise InputError(f"{path}:{number}: \"image\" and \"question\" must be strings")
        image_path = Path(image)
        queries.append(Query(image_path if image_path.is_absolute() else path.parent / image_path, question))
    if not queries:
        raise InputError(f"{path} holds no questions")
    return queries


def pair_queries(images: list[str], questions: list[str], default_question: str) -> list[Query]:
    if not questions:
        print(f"{PROG}: no question given (-q); asking the default question: {default_question!r}",
              file=sys.stderr)
        questions = [default_question]
    if len(images) == 1:
        return [Query(images[0], q) for q in questions]
    if len(questions) == 1:
        return [Query(i, questions[0]) for i in images]
    if len(images) == len(questions):
        return [Query(i, q) for i, q in zip(images, questions)]
    raise InputError(f"{len(images)} images and {len(questions)} questions cannot be paired; pass one image, "
                     "one question, or as many questions as images")


def validate_arguments(args) -> None:
    if not args.image and not args.jsonl:
        raise InputError("no image given; pass -i IMAGE or --jsonl FILE")
    if args.batch_size < 1:
        raise InputError("--batch-size must be at least 1")
    if args.max_new_tokens is not None and not 1 <= args.max_new_tokens <= MAX_NEW_TOKENS_CAP:
        raise InputError(f"--max-new-tokens must be between 1 and {MAX_NEW_TOKENS_CAP}")
    if args.threads is not None and args.threads < 1:
        raise InputError("--threads must be at least 1")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    validate_arguments(args)
    # Cheap checks of every input before the model loads, so a typo fails in milliseconds.
    for image in args.image:
        if not Path(image).is_file():
            raise InputError(f"image {image} does not exist or is not a file; check the path")
    for question in args.question:
        check_question(question)

    if args.engine == "native":
        if args.provider != "cpu":
            raise InputError("--engine native runs on the CPU here; leave out --provider")
        from .native import NativeDocumentQA

        qa = NativeDocumentQA(args.model, threads=args.threads, verify_checksums=args.verify)
    else:
        qa = DocumentQA(args.model, threads=args.threads, provider=args.provider, verify_checksums=args.verify)
    queries = pair_queries(args.image, args.question, qa.default_question) if args.image else []
    if args.jsonl:
        queries += read_jsonl(Path(args.jsonl))
    for start in range(0, len(queries), args.batch_size):
        for answer in qa.answer_batch(queries[start: start + args.batch_size], args.max_new_tokens):
            if args.json:
                print(json.dumps(answer.to_dict(), ensure_ascii=False))
            elif len(queries) == 1:
                print(answer.answer)
            else:
                print(f"{answer.image}\t{answer.question}\t{answer.answer}")
            sys.stdout.flush()
    return 0


def cli(argv: list[str] | None = None) -> int:
    return run_main(main, argv, PROG)


if __name__ == "__main__":
    sys.exit(cli())
