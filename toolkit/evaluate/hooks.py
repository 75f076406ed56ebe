"""What every hubtool eval task does with a document and a generation, in one place: the doc as a
`Problem`, one answer out of a generation (strict / flexible), the majority vote, the score. The task
folders' `utils.py` files (lm-eval loads them by path, `!function utils.X`) import these, so the CoT,
PoT and self-consistency tasks read and score answers exactly alike, and exactly as the builders do.
"""

from __future__ import annotations

from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any

from toolkit import answers, prompts
from toolkit.builders.reasoning import prompt_messages
from toolkit.errors import UserError
from toolkit.evaluate.report import MISS  # what a filter yields when nothing could be extracted
from toolkit.methods import methods
from toolkit.records import Problem
from toolkit.training.provenance import training_prompt

# What the CoT builder gives a prompt template (toolkit.builders.reasoning.prompt_messages): a prompt that
# needs more (counterfactual_cot's `labels`) cannot be asked of the shared tasks.
PROMPT_VARIABLES = frozenset({"question", "choices", "exemplars", "answer_hint"})


def doc_problem(doc: dict) -> Problem:
    """A task document (the shared doc shape) as the builders' `Problem`."""
    return Problem(id=str(doc.get("id", "")), source="eval", question=doc["question"], gold=doc["gold"],
                   answer_type=doc["answer_type"], choices=tuple(doc.get("choices") or ()))  # fmt: skip


def extract(text: str, doc: dict, mode: str) -> str:
    """One answer from one generation: `strict` reads only "The answer is X."; `flexible` falls back."""
    choices = tuple(doc.get("choices") or ())
    if mode == "strict":
        value = answers.extract_strict(text, doc["answer_type"], choices)
    else:
        found = answers.extract_answer(text, doc["answer_type"], choices, flexible=True)
        value = found.value if found else None
    return MISS if value is None else value


def vote(values: list[str]) -> str:
    """The most frequent answer; misses do not vote, ties go to the earliest."""
    valid = [v for v in values if v != MISS]
    if not valid:
        return MISS
    counts = Counter(valid)
    best = max(counts.values())
    return next(v for v in valid if counts[v] == best)


def score(doc: dict, pred: str) -> dict[str, float]:
    """exact_match = the toolkit's checker on the answer; a miss scores 0."""
    if pred == MISS:
        return {"exact_match": 0.0}
    choices = tuple(doc.get("choices") or ())
    return {"exact_match": float(answers.is_correct(pred, doc["gold"], doc["answer_type"], choices))}


# --- the prompt ----------------------------------------------------------------------------------------
def doc_prompt(doc: dict, template: str = "cot") -> str:
    """The user turn for a document: the CoT builder's prompt with `template`, exactly as a build renders
    it for the same problem, so a student is scored on the prompt it was trained on."""
    return prompt_messages(doc_problem(doc), template, dirs=prompt_dirs())[-1]["content"]


def prompt_dirs() -> tuple[Path, ...]:
    """Every method's own template folder: `--prompt NAME` may name any template a method ships."""
    return tuple(d for m in methods() for d in m.prompt_dirs)


def doc_to_text_for(template: str):
    """A task's `doc_to_text` for one prompt template (a name, or a FILE.jinja path)."""
    return partial(doc_prompt, template=template)


def check_prompt(template: str, what: str = "--prompt") -> None:
    """A prompt the shared tasks can render: it exists, compiles, and needs no variable they lack."""
    missing = prompts.template_variables(template, prompt_dirs()) - PROMPT_VARIABLES
    if missing:
        raise UserError(f"{what} {template}: the eval tasks cannot fill {', '.join(sorted(missing))} (they give "
                        f"{', '.join(sorted(PROMPT_VARIABLES))}); use a CoT-style prompt")


def with_prompt(cfg: dict[str, Any], template: str, name: str) -> dict[str, Any]:
    """A task config (a task whose `metadata.prompt` says it takes one) asking with another prompt;
    `name` is what the report shows for it."""
    metadata = dict(cfg.get("metadata") or {})
    return cfg | {"doc_to_text": doc_to_text_for(template), "metadata": metadata | {"prompt": name}}


def model_prompt(spec, explicit: str | None, output_dir: Path) -> tuple[tuple[str, str] | None, str]:
    """Which prompt a model is asked with, as (template, name shown) for `with_prompt` (None: each
    task's own), and a note for the report: --prompt, else the training prompt a hubtool-trained student's
    record names (its text, as trained, even when it was a file this machine lacks), else the tasks'."""
    if explicit is not None:
        ref = prompts.PromptRef.of(explicit, dirs=prompt_dirs())
        return (explicit, ref.name), f"asked with {ref.describe()} (--prompt)"
    folder = spec.args.get("peft") or spec.args.get("lora_local_path") or spec.args.get("pretrained")
    ref = training_prompt(folder) if folder else None
    if ref is None:
        return None, "asked with each task's own prompt"
    template = _template_for(ref, output_dir)
    try:
        check_prompt(template, "its training prompt")
    except UserError:  # e.g. counterfactual_cot, which needs a label set: its own tasks ask with it
        return None, f"its training prompt {ref.describe()} needs more than these tasks give; asked with each task's own"
    return (template, ref.name), f"asked with its training prompt {ref.describe()}"


def _template_for(ref, output_dir: Path) -> str:
    """A template name or file that renders `ref`'s text: the shipped one while unchanged, else a copy
    written beside the report (a student trained on an older cot.jinja is asked with that one)."""
    dirs = prompt_dirs()
    if ref.shipped and ref.name in prompts.known_templates(dirs) and prompts.template_source(ref.name, dirs) == ref.text:
        return ref.name
    path = Path(output_dir) / "prompts" / f"{ref.sha256[:12]}-{Path(ref.name).stem}.jinja"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(ref.text, encoding="utf-8")
    return str(path.resolve())
