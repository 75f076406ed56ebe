"""AlpacaEval and MT-Bench hooks: the judge scores the answers after lm-eval has generated them
(toolkit/evaluate/judged.py); lm-eval itself records only how long each answer is, which is worth
knowing beside a judged score (LLM judges favour longer answers)."""

from __future__ import annotations


def process_results(doc: dict, results: list[str]) -> dict:
    return {"answer_words": len((results[0] if results else "").split())}
