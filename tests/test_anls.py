"""ANLS and exact match on small annotations whose scores were computed by hand."""

from __future__ import annotations

import json

import pytest

from pix2struct_onnx.anls import exact_match, levenshtein, question_anls, score


@pytest.mark.parametrize("a,b,distance", [("", "", 0), ("abc", "", 3), ("kitten", "sitting", 3),
                                          ("flaw", "lawn", 2), ("4821", "4812", 2)])
def test_levenshtein(a, b, distance):
    assert levenshtein(a, b) == distance == levenshtein(b, a)


def test_hand_computed_scores():
    predictions = ["4821", " Acme Research LTD ", "march 3 2021", "kitten", "nothing"]
    golds = [["4821"],                       # exact: 1
             ["acme research ltd."],          # NL = 1/18 -> 17/18
             ["March 3, 2021", "3/3/2021"],   # NL = 1/13 -> 12/13 (best gold)
             ["sitting"],                     # NL = 3/7 < 0.5 -> 4/7
             ["something else entirely"]]     # NL >= 0.5 -> 0
    expected = [1.0, 17 / 18, 12 / 13, 4 / 7, 0.0]
    for p, g, e in zip(predictions, golds, expected):
        assert question_anls(p, g) == pytest.approx(e)
    result = score(predictions, golds)
    assert result["anls"] == pytest.approx(sum(expected) / 5)
    assert result["exact_match"] == pytest.approx(1 / 5)  # only "4821" (case and spaces ignored elsewhere)
    assert exact_match(" ACME research ltd. ", golds[1]) == 1.0


def test_threshold_boundary():
    # NL exactly 0.5 scores 0 (the definition keeps NL < 0.5 only): "ab" vs "ax" -> 1/2.
    assert question_anls("ab", ["ax"]) == 0.0
    assert question_anls("abc", ["abx"]) == pytest.approx(2 / 3)


def test_evaluate_cli_on_a_tiny_docvqa_file(tiny_onnx, sample_image, tmp_path, qa):
    from conftest import run_script

    expected = qa.answer(sample_image, "What is the total?").answer
    annotations = {"data": [
        {"questionId": 1, "question": "What is the total?", "image": sample_image.name, "answers": [expected]},
        {"questionId": 2, "question": "What is the total?", "image": sample_image.name, "answers": ["zzzz"]},
    ]}
    (tmp_path / "ann.json").write_text(json.dumps(annotations))
    out = tmp_path / "evaluation.json"
    result = run_script("evaluate.py", "--annotations", str(tmp_path / "ann.json"), "--images",
                        str(sample_image.parent), "-m", str(tiny_onnx), "--output", str(out))
    assert result.returncode == 0, result.stderr
    figures = json.loads(out.read_text())["variants"][str(tiny_onnx)]
    second = question_anls(expected, ["zzzz"])
    assert figures["anls"] == pytest.approx((1.0 + second) / 2)
    assert figures["exact_match"] == pytest.approx(0.5)


def test_evaluate_cli_bad_annotations(tiny_onnx, tmp_path):
    from conftest import run_script

    (tmp_path / "ann.json").write_text('{"data": [{"question": "q?", "image": "missing.png", "answers": ["a"]}]}')
    result = run_script("evaluate.py", "--annotations", str(tmp_path / "ann.json"), "--images", str(tmp_path),
                        "-m", str(tiny_onnx))
    assert result.returncode == 2 and "missing.png" in result.stderr and "Traceback" not in result.stderr
