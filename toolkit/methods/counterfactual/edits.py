"""Pure helpers of counterfactual distillation: the label space, which targets and views a problem
gets, what a teacher's edit says, how far it is from the original, what the judge's votes decide.

No model here: every rule is table-tested on plain strings (tests/test_counterfactual.py).
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from toolkit import answers
from toolkit.records import Problem

# Word tokens and single punctuation marks: "isn't" is three tokens, so a negation edit counts.
_TOKEN = re.compile(r"\w+|[^\w\s]")
_MARKER = re.compile(r"^[\s*_#>]*counterfactual[\s*_]*(?:question|example|input)?[\s*_]*:[\s*_]*", re.I | re.M)
_OPTION_LINE = re.compile(r"^\s*[(\[]?([A-Z])[)\].:]\s+(.*\S)\s*$")
_OPTIONS_HEAD = re.compile(r"^\s*(?:options|choices)\s*:\s*$", re.I)
# Lines a teacher may add after the edited input that are not part of it.
_TRAILER = re.compile(r"^\s*[*_]*(?:(?:the\s+)?(?:new\s+|correct\s+)?(?:answer|label)\b|correct answer\b|note\b)", re.I)


@dataclass(frozen=True, slots=True)
class Label:
    """One answer of a problem's label space: `value` is what the answer line states ("B", "yes",
    "positive"); `shown` is how a prompt names it ("(B) refrigerator")."""

    value: str
    shown: str


def label_space(problem: Problem) -> list[Label]:
    """The finite answers a problem can have, in their canonical order."""
    if problem.answer_type == "option":
        letters = answers.option_letters(len(problem.choices))
        return [Label(letter, f"({letter}) {text}") for letter, text in zip(letters, problem.choices)]
    if problem.answer_type == "yesno":
        return [Label("yes", "yes"), Label("no", "no")]
    if problem.answer_type == "label":
        return [Label(choice, choice) for choice in problem.choices]
    return []


def same_label(problem: Problem, a: str, b: str) -> bool:
    return answers.is_correct(a, b, problem.answer_type, problem.choices)


def gold_label(problem: Problem) -> Label | None:
    return next((label for label in label_space(problem) if same_label(problem, label.value, problem.gold)), None)


def other_labels(problem: Problem) -> list[Label]:
    return [label for label in label_space(problem) if not same_label(problem, label.value, problem.gold)]


def pick(labels: Sequence[Label], how: str, seed: int, key: str) -> list[Label]:
    """`how` is "all" (every label, in order), "one" or a count N: that many, drawn without
    replacement by a generator seeded with (seed, key), so a re-run picks the same ones."""
    if how == "all":
        return list(labels)
    n = 1 if how == "one" else int(how)
    order = list(labels)
    random.Random(f"{seed}:{key}").shuffle(order)
    chosen = {label.value for label in order[:n]}
    return [label for label in labels if label.value in chosen]  # label order, not draw order


# -- the teacher's edit -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Edit:
    """What a counterfactual reply holds: the edited input, or why it is not usable."""

    text: str
    problem: str | None = None  # "unparsable" (nothing there) | "format" (options changed)


def parse_edit(reply: str, problem: Problem) -> Edit:
    """The edited input in a teacher's reply: the text after the last "Counterfactual:" marker (the
    whole reply when it has none), without quotes, fences and trailing answer lines. For multiple
    choice, options the reply repeats must be the original ones, in order (format check)."""
    markers = list(_MARKER.finditer(reply or ""))
    text = reply[markers[-1].end() :] if markers else (reply or "")
    lines = _unfence(text).strip().splitlines()
    while lines and (not lines[-1].strip() or _TRAILER.match(lines[-1])):
        lines.pop()
    options: list[str] = []
    if problem.answer_type == "option":
        while lines and (_OPTION_LINE.match(lines[-1]) or not lines[-1].strip()):
            match = _OPTION_LINE.match(lines.pop())
            if match:
                options.insert(0, match[2])
        if lines and _OPTIONS_HEAD.match(lines[-1]):
            lines.pop()
    edited = "\n".join(lines).strip().strip("\"'“”").strip()
    if not edited:
        return Edit("", "unparsable")
    if options and [_norm(o) for o in options] != [_norm(c) for c in problem.choices]:
        return Edit(edited, "format")
    return Edit(edited)


# A label stated as the answer: "(Answer No)", "The answer is no", "Label: positive", "Sentiment - negative".
_CUE = r"\b(?:answer|label|sentiment|verdict)\b[*_]*(?:\s*(?:is|:|=|-|would be|should be)\b)?[\s:=*_\-(\[\"']*"


def _label_words(problem: Problem) -> list[str]:
    """How each label may be written in a text: its value, and for multiple choice its option text."""
    words = [label.value for label in label_space(problem)]
    return words + (list(problem.choices) if problem.answer_type == "option" else [])


def label_leak(problem: Problem, edited: str, target: Label) -> bool:
    """True when the edit writes the target label into the input where the original had none: stated as
    an answer ("(Answer No)", "The answer is no"), or, for a label set (sentiment, NLI: words a text
    rarely holds by chance), the label word itself. Yes/no and option letters are ordinary words, so
    for them only the stated form counts."""
    forms = [target.value] + ([problem.choices[ord(target.value) - 65]] if problem.answer_type == "option" else [])
    for form in forms:
        stated = re.compile(_CUE + re.escape(form) + r"\b", re.I)
        if len(stated.findall(edited)) > len(stated.findall(problem.question)):
            return True
    if problem.answer_type == "label":
        bare = re.compile(r"\b" + re.escape(target.value) + r"\b", re.I)
        return len(bare.findall(edited)) > len(bare.findall(problem.question))
    return False


def restore_format(problem: Problem, edited: str) -> tuple[str, bool]:
    """The edit with the original's answer-format line put back where a teacher wrote its answer into
    it, and whether it was. A real small teacher (Qwen2.5-Coder-1.5B on gym syllogisms) ended 171 of
    its 447 edits with "(Answer No)", "No", "(Answer No or Yes)" or "(Answer Yes or No)\nNo": about 100
    of them sound content edits, most of the rest the question unchanged but for the answer. The format
    line is the task's, not the content's, so it is restored from the original (the answer dropped)
    before the edit is checked, and an edit that changed nothing else is then `identical`. An edit
    whose format line is simply gone, with no answer written, is left as it is (`instructions`)."""
    original = problem.question.rstrip().splitlines()
    fmt = original[-1].strip() if original else ""
    labels = {w.casefold() for w in _label_words(problem)}
    if len(_listed(fmt, labels)) < 2:
        return edited, False  # the original has no answer-format line of its own
    lines = edited.rstrip().splitlines()
    restored = False
    while lines and _bare_label(lines[-1], labels):
        lines.pop()  # "No" after (or instead of) the format line
        restored = True
    last = lines[-1].strip() if lines else ""
    if _norm(last) == _norm(fmt):
        pass
    elif _listed(last, labels) and _shape(last, labels) == _shape(fmt, labels):
        lines[-1], restored = fmt, True  # "(Answer No)", "(Answer No or Yes)": the format line with a label in or out
    elif restored and all(_norm(fmt) != _norm(line) for line in lines):
        lines.append(fmt)  # the answer was written where the format line stood
    return ("\n".join(lines) if restored else edited), restored


def _listed(line: str, labels: set[str]) -> list[str]:
    """The label words a line names, in order."""
    return [t for t in tokens(line) if t in labels]


def _shape(line: str, labels: set[str]) -> tuple[str, ...]:
    """A line's words less its label words and connectives: "(Answer No or Yes)", "(Answer: No)" and
    "(Answer Yes or No)" are all ("answer",)."""
    return tuple(t for t in tokens(line) if t.isalnum() and t not in labels and t not in ("or", "and"))


def _bare_label(line: str, labels: set[str]) -> bool:
    """A line that is a label and nothing else ("No", "(No)", "Yes.")."""
    words = [t for t in tokens(line) if t.isalnum()]
    return len(words) == 1 and words[0] in labels


def instructions_changed(problem: Problem, edited: str) -> bool:
    """True when a part of the original that lists two or more labels — the task's answer format, such as
    "(Answer Yes or No)" — is not in the edit as it was: an edit changes the content, never the task."""
    words = "|".join(re.escape(w) for w in sorted(_label_words(problem), key=len, reverse=True))
    listing = re.compile(rf"(?:\b(?:{words})\b\s*(?:,|/|\bor\b|,\s*or\b)\s*)+\b(?:{words})\b", re.I)
    for match in {_norm(m[0]) for m in listing.finditer(problem.question)}:
        if _norm(edited).count(match) < _norm(problem.question).count(match):
            return True
    return False


def _unfence(text: str) -> str:
    """Without a Markdown code fence around it (and the fence's language tag)."""
    lines = text.strip().splitlines()
    if len(lines) >= 2 and lines[0].startswith("```") and lines[-1].strip() == "```":
        lines = lines[1:-1]
    return "\n".join(lines)


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold()


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.casefold())


def edit_ratio(original: str, edited: str) -> float:
    """Token-level edit distance (insertions, deletions, substitutions of words and punctuation)
    divided by the original's length in tokens: 0 for the same text, 0.1 for one word in ten."""
    a, b = tokens(original), tokens(edited)
    if not a:
        return 0.0 if not b else float(len(b))
    previous = list(range(len(b) + 1))
    for i, token in enumerate(a, 1):
        current = [i]
        for j, other in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (token != other)))
        previous = current
    return round(previous[-1] / len(a), 4)


# Marks that separate words without changing what a text says. A real small teacher "flipped" a review by
# turning "through; easily" into "through, easily", and its own judge agreed. Operators (+, -, =) are content.
_SEPARATORS = frozenset(".,;:!\"'`")


def is_identical(original: str, edited: str) -> bool:
    """The same input up to case, spacing and separating punctuation: no edit of its content."""
    def content(text: str) -> list[str]:
        return [t for t in tokens(text) if t not in _SEPARATORS]

    return content(original) == content(edited)


# -- the judge ----------------------------------------------------------------------------------
def verdict(problem: Problem, votes: Sequence[str], target: str) -> str:
    """What k blind votes decide about an edit meant to have label `target`. A vote is a label, or ""
    (empty, cut off, unreadable): no vote. Fewer readable votes than half of k: "unreadable" (ours:
    a label one reply in three states is no verdict); else "target" when a strict majority of the
    readable votes says it, "original" when one says the old label, else "other"."""
    valid = [v for v in votes if v]
    if 2 * len(valid) <= len(votes):
        return "unreadable"

    def count(label: str) -> int:
        return sum(same_label(problem, v, label) for v in valid)

    if 2 * count(target) > len(valid):
        return "target"
    if 2 * count(problem.gold) > len(valid):
        return "original"
    return "other"


# -- the rationales ------------------------------------------------------------------------------
_SENTENCE = re.compile(r"[^.!?\n]*(?:[.!?](?=\s|$)|\n|$)")
# A bare yes/no that opens a sentence or follows a colon: "Yes, the conclusion follows." / "So: No."
_BARE_YESNO = re.compile(r"(?:^|[\n:]|[.!?]\s)\s*[*_]*(yes|no)[*_]*(?=[,.!;])", re.I)


def stated_labels(problem: Problem, text: str) -> set[str]:
    """Every label the text states as its answer, anywhere: each sentence's "The answer is X" (the
    shared reader, sentence by sentence: "the answer is not X" states none) and, for yes/no, a bare
    "Yes," or "No." opening a sentence. A local check until the shared judge reports contradictions."""
    found = set()
    for sentence in _SENTENCE.findall(text or ""):
        value = answers.extract_strict(sentence, problem.answer_type, problem.choices) if sentence.strip() else None
        if value is not None:
            found.add(value)
    if problem.answer_type == "yesno":
        found |= {m.lower() for m in _BARE_YESNO.findall(text or "")}
    return found


def argues_other(problem: Problem, text: str, label: str) -> bool:
    """True when a rationale for `label` also states another label (it argues both ways, or argues one
    and ends with the other): it is not a verified rationale for `label`."""
    return any(not same_label(problem, value, label) for value in stated_labels(problem, text))


def histogram_bin(ratio: float, width: float = 0.1, top: float = 1.0) -> str:
    """The edit-ratio histogram's bin of a value: "0.0-0.1", ..., "0.9-1.0", ">1.0"."""
    if ratio > top:
        return f">{top:.1f}"
    index = min(int(ratio / width + 1e-9), int(top / width) - 1)
    return f"{index * width:.1f}-{(index + 1) * width:.1f}"


def histogram_bins(width: float = 0.1, top: float = 1.0) -> list[str]:
    return [histogram_bin(i * width + width / 2, width, top) for i in range(int(top / width))] + [f">{top:.1f}"]
