"""DocVQA scores: ANLS (Average Normalized Levenshtein Similarity, DocVQA Task 1) and exact match.

For each question: s = max over gold answers of (1 - NL) if NL < threshold (0.5) else 0, with
NL = edit distance / max(len(gold), len(prediction)) after lowercasing and trimming both strings.
ANLS is the mean of s over questions. Written here (a dozen lines) rather than taken from a package:
the `anls` package on PyPI pulls in extra dependencies, and the huggingface/evaluate version has
known bugs.
"""

from __future__ import annotations


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insertions, deletions, substitutions each cost 1)."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, start=1):
        current = [i]
        for j, char_b in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b)))
        previous = current
    return previous[-1]


def _normalize(text: str) -> str:
    return text.strip().lower()


def question_anls(prediction: str, golds: list[str], threshold: float = 0.5) -> float:
    best = 0.0
    prediction = _normalize(prediction)
    for gold in golds:
        gold = _normalize(gold)
        longest = max(len(gold), len(prediction))
        distance = levenshtein(gold, prediction) / longest if longest else 0.0
        best = max(best, 1.0 - distance if distance < threshold else 0.0)
    return best


def exact_match(prediction: str, golds: list[str]) -> float:
    return float(any(_normalize(prediction) == _normalize(g) for g in golds))


def score(predictions: list[str], golds: list[list[str]]) -> dict[str, float]:
    """Mean ANLS and exact match over questions (0..1)."""
    if len(predictions) != len(golds):
        raise ValueError("one prediction per question is needed")
    if not predictions:
        return {"anls": 0.0, "exact_match": 0.0, "questions": 0}
    anls = sum(question_anls(p, g) for p, g in zip(predictions, golds)) / len(predictions)
    em = sum(exact_match(p, g) for p, g in zip(predictions, golds)) / len(predictions)
    return {"anls": anls, "exact_match": em, "questions": len(predictions)}
