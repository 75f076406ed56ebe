"""Benchmark rows and gym problems -> the doc shape the eval tasks read, through `toolkit.sources`.

An eval task and a build read a benchmark identically (question text, option order, gold, answer
type, the rows skipped), because both turn rows into `Problem`s with the same code: a Hub benchmark's
rows go through `toolkit.sources.benchmark_problems` (the catalogue converter `load_source("hf:NAME")`
uses), a gym task's problems come from `load_source("gym:TASK")` itself. The doc shape is described
in eval_tasks/_common/utils.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from toolkit.records import Problem
from toolkit.sources import benchmark_info, benchmark_problems, load_source


def problem_doc(problem: Problem, doc_id: str) -> dict[str, Any]:
    """One problem as an eval doc; `rationale` is the benchmark's worked solution (few-shot targets)."""
    meta = problem.meta
    rationale = meta.get("reference_rationale") or (meta.get("gym_metadata") or {}).get("answer_cot") or ""
    return {
        "id": doc_id,
        "question": problem.question,
        "choices": list(problem.choices),
        "gold": problem.gold,
        "answer_type": problem.answer_type,
        "rationale": str(rationale).strip(),
    }


def _dataset(docs: list[dict[str, Any]]):
    import datasets  # datasets takes about a second to import; lm-eval has loaded it by now

    features = datasets.Features(
        {
            "id": datasets.Value("string"),
            "question": datasets.Value("string"),
            "choices": datasets.Sequence(datasets.Value("string")),
            "gold": datasets.Value("string"),
            "answer_type": datasets.Value("string"),
            "rationale": datasets.Value("string"),
        }
    )
    return datasets.Dataset.from_list(docs, features=features)


def process_docs_for(benchmark: str) -> Callable[[Any], Any]:
    """A `process_docs` hook for lm-eval: the split's rows read by the catalogue, as docs.

    Rows the benchmark itself leaves unusable (an ASDiv ratio answer) are skipped, as a build skips them.
    """
    split = benchmark_info(benchmark).eval_split  # lm-eval does not say which split it hands over; ids only

    def process_docs(dataset):
        problems = benchmark_problems(benchmark, dataset, split)
        return _dataset([problem_doc(p, f"{benchmark}-{p.index}") for p in problems])

    return process_docs


def gym_dataset(gym_task: str, gym_split: str, gym_seed: int, gym_size: int, **_ignored: Any):
    """A gym eval task's `custom_dataset`: `gym_size` problems of `load_source("gym:TASK", ...)`.

    lm-eval calls it with the task's metadata and `dataset_kwargs` merged (hence the gym_ prefixes:
    no clash with a model argument), so it takes what it needs and ignores the rest. The one split
    it returns is named `gym_split`, as the task's `test_split` is.
    """
    import datasets  # datasets takes about a second to import; lm-eval has loaded it by now

    problems = load_source(f"gym:{gym_task}", split=gym_split, seed=gym_seed, limit=gym_size).problems
    return datasets.DatasetDict({gym_split: _dataset([problem_doc(p, p.id) for p in problems])})
