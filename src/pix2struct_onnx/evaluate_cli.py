"""evaluate.py: ANLS and exact match of model folders on a DocVQA-format annotation file.

The annotation file is DocVQA's: {"data": [{"questionId", "question", "image", "answers": [...]}, ...]},
with image paths relative to --images. Each model folder (-m, repeatable) answers every question;
--hf MODEL adds transformers' PyTorch model as a reference (needs the export extras). Scores go to
stdout and to evaluation.json, which results.md picks up as an accuracy column.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from .anls import score
from .cli_common import OneLineParser, run_main
from .errors import InputError

PROG = "evaluate.py"


def build_parser() -> OneLineParser:
    parser = OneLineParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("--annotations", required=True, help="DocVQA JSON (e.g. val_v1.0.json)")
    parser.add_argument("--images", required=True, help="folder the annotation's image paths are relative to")
    parser.add_argument("-m", "--model", action="append", default=[], help="ONNX model folder (repeatable)")
    parser.add_argument("--hf", default=None, help="also score this Hugging Face model with PyTorch")
    parser.add_argument("--limit", type=int, default=None, help="first N questions only")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--output", default="evaluation.json")
    return parser


def read_annotations(path: Path, images: Path, limit: int | None) -> list[dict]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read annotations {path} ({exc.__class__.__name__}); pass DocVQA's JSON") from None
    items = data.get("data") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise InputError(f"{path} has no \"data\" list; pass a DocVQA annotation file")
    questions = []
    for number, item in enumerate(items[:limit] if limit else items):
        try:
            questions.append({"id": item.get("questionId", number), "question": item["question"],
                              "image": images / item["image"], "answers": list(item["answers"])})
        except (KeyError, TypeError, AttributeError):
            raise InputError(f"{path}: entry {number} lacks question, image or answers "
                             "(answers are needed to score)") from None
    for q in questions:
        if not q["image"].is_file():
            raise InputError(f"image {q['image']} named in {path} does not exist; check --images")
    return questions


def answer_onnx(folder: str, questions: list[dict], batch_size: int, threads: int | None) -> list[str]:
    from .pipeline import DocumentQA, Query

    qa = DocumentQA(folder, threads=threads)
    answers = []
    for start in range(0, len(questions), batch_size):
        batch = questions[start: start + batch_size]
        answers += [a.answer for a in qa.answer_batch([Query(q["image"], q["question"]) for q in batch])]
        print(f"  {folder}: {len(answers)}/{len(questions)}", file=sys.stderr, flush=True)
    return answers


def answer_pytorch(model_id: str, questions: list[dict], font: str) -> list[str]:
    import torch
    from transformers import Pix2StructForConditionalGeneration, Pix2StructProcessor

    from .preprocessing import load_image
    from .source import resolve_model

    path = resolve_model(model_id).path
    model = Pix2StructForConditionalGeneration.from_pretrained(path).eval()
    processor = Pix2StructProcessor.from_pretrained(path)
    answers = []
    for q in questions:
        inputs = processor.image_processor(images=load_image(q["image"], 0), header_text=q["question"],
                                           font_path=font, return_tensors="pt")
        with torch.inference_mode():
            out = model.generate(**inputs)
        answers.append(processor.batch_decode(out, skip_special_tokens=True)[0])
        print(f"  {model_id}: {len(answers)}/{len(questions)}", file=sys.stderr, flush=True)
    return answers


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.model and not args.hf:
        raise InputError("nothing to evaluate; pass -m MODEL_FOLDER and/or --hf MODEL")
    questions = read_annotations(Path(args.annotations), Path(args.images), args.limit)
    golds = [q["answers"] for q in questions]
    report = {"annotations": str(args.annotations), "questions": len(questions), "variants": {}}
    for folder in args.model:
        started = time.perf_counter()
        predictions = answer_onnx(folder, questions, args.batch_size, args.threads)
        report["variants"][folder] = {**score(predictions, golds), "seconds": time.perf_counter() - started,
                                      "predictions": predictions}
    if args.hf:
        font = str(Path(args.model[0]) / "font.ttf") if args.model else None
        if font is None:
            raise InputError("--hf needs a -m folder too (its font draws the questions for both)")
        predictions = answer_pytorch(args.hf, questions, font)
        report["variants"][f"PyTorch {args.hf}"] = {**score(predictions, golds), "predictions": predictions}
    for name, figures in report["variants"].items():
        print(f"{name}: ANLS {figures['anls'] * 100:.1f}  exact match {figures['exact_match'] * 100:.1f}  "
              f"({figures['questions']} questions)")
    Path(args.output).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


def cli(argv: list[str] | None = None) -> int:
    return run_main(main, argv, PROG)


if __name__ == "__main__":
    sys.exit(cli())
