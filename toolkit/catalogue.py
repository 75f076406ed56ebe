"""How a raw row becomes a problem: the known benchmarks behind `hf:NAME`, and the field mapping
used for any other table (`hf:org/name`, `file:PATH`).

Each benchmark names its Hub repo, config, labelled splits, answer type, license and citation, and a
small converter from a raw row to (question, gold, choices, meta). Schemas follow the Hub repos as
the Hub served them in 2025; where a schema was uncertain, the entry's `note` says so. Golds are
canonical text: numbers without commas or trailing zeros, "yes"/"no", option letters A, B, ...
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from toolkit.records import AnswerType
from toolkit.registry import Registry

LETTERS = string.ascii_uppercase


class BadRow(ValueError):
    """A row that cannot become a problem; the message says why."""


class MissingField(KeyError):
    """A row lacks every one of the named fields."""

    def __init__(self, names: tuple[str, ...], available: list[str]) -> None:
        super().__init__(names)
        self.names = names
        self.available = available


@dataclass(frozen=True, slots=True)
class Row:
    """What a converter makes of one raw row."""

    question: str
    gold: str
    choices: tuple[str, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)


# A converter returns None for a row it skips on purpose (a gold the benchmark itself leaves unusable).
Converter = Callable[[Mapping[str, Any]], Row | None]


@dataclass(frozen=True, slots=True)
class Benchmark:
    """One catalogue entry."""

    name: str
    hub_id: str
    config: str | None
    splits: tuple[str, ...]  # splits with public gold labels
    answer_type: AnswerType
    task_category: str
    license: str | None
    citation: str
    convert: Converter
    note: str = ""


BENCHMARKS: Registry[Benchmark] = Registry("benchmark")


def known_benchmarks() -> list[str]:
    """Names that `hf:NAME` accepts."""
    return BENCHMARKS.names()


def benchmark_info(name: str) -> Benchmark:
    """The catalogue entry for `name`; UserError with the known names on a miss."""
    return BENCHMARKS.get(name)


def benchmark_for_hub_id(hub_id: str, config: str | None = None) -> Benchmark | None:
    """The entry for this Hub repo, so `hf:openai/gsm8k` maps like `hf:gsm8k`; the config decides
    between entries that share a repo (ARC), and None when it can't."""
    found = [b for b in map(BENCHMARKS.get, BENCHMARKS) if b.hub_id == hub_id]
    if len(found) > 1:
        found = [b for b in found if b.config == config]
    return found[0] if len(found) == 1 else None


# ---- row access ---------------------------------------------------------------------------------


def pick(row: Mapping[str, Any], name: str) -> Any:
    """row[name], or MissingField naming the columns the row does have."""
    if name not in row:
        raise MissingField((name,), sorted(row))
    return row[name]


def text(value: Any, what: str = "question") -> str:
    """Non-empty text, stripped; BadRow otherwise."""
    if not isinstance(value, str) or not value.strip():
        raise BadRow(f"{what} is empty or not text: {value!r}")
    return value.strip()


def join_sentences(first: str, second: str) -> str:
    """Body + question, with the full stop some SVAMP/ASDiv bodies lack."""
    first = first.strip()
    if first and first[-1] not in ".?!":
        first += "."
    return f"{first} {second.strip()}".strip()


def number_gold(value: Any) -> str:
    gold = parse_number(value)
    if gold is None:
        raise BadRow(f"answer {value!r} is not a number")
    return gold


def present(**meta: Any) -> dict[str, Any]:
    """The meta entries that have a value."""
    return {k: v for k, v in meta.items() if v is not None}


def option_row(question: str, texts: list[str], gold: str, **meta: Any) -> Row:
    return Row(question, gold, tuple(texts), present(**meta))


# ---- converters, one per benchmark ---------------------------------------------------------------


def _gsm8k(row: Mapping[str, Any]) -> Row:
    # answer: step-by-step rationale with <<calc>> annotations, then "#### 72" on the last line.
    answer = text(pick(row, "answer"), "answer")
    rationale, sep, final = answer.rpartition("####")
    if not sep:
        raise BadRow("answer has no final '#### <number>' line")
    return Row(
        text(pick(row, "question")), number_gold(final), meta={"reference_rationale": rationale.strip()}
    )


def _svamp(row: Mapping[str, Any]) -> Row:
    # ChilleD/SVAMP: ID, Body, Question, Equation, Answer (float64, 8.0), Type, question_concat.
    if "Body" in row and "Question" in row:
        question = join_sentences(text(row["Body"], "Body"), text(row["Question"], "Question"))
    else:
        question = text(pick(row, "question_concat"))
    meta = present(equation=row.get("Equation"), type=row.get("Type"), source_id=row.get("ID"))
    return Row(question, number_gold(pick(row, "Answer")), meta=meta)


def _asdiv(row: Mapping[str, Any]) -> Row | None:
    # answer carries its unit: "9 (apples)". A few ASDiv golds are not one number (ratios, several
    # values); those rows are skipped rather than guessed.
    raw = text(pick(row, "answer"), "answer")
    value, _, unit = raw.partition(" (")
    gold = parse_number(value)
    if gold is None:
        return None
    question = join_sentences(text(pick(row, "body"), "body"), text(pick(row, "question")))
    meta = present(
        unit=unit.rstrip(")") or None, solution_type=row.get("solution_type"), formula=row.get("formula")
    )
    return Row(question, gold, meta=meta)


def _multiarith(row: Mapping[str, Any]) -> Row:
    # final_ans is a string since the repo's "change dtype of final_ans to str" commit.
    return Row(text(pick(row, "question")), number_gold(pick(row, "final_ans")))


def _aqua_rat(row: Mapping[str, Any]) -> Row:
    # "raw" config: options ["A)21", "B)21.5", ...], correct "A", rationale.
    texts, labels = parse_choices(pick(row, "options"))
    gold = option_letter(pick(row, "correct"), texts, labels)
    if gold is None:
        raise BadRow(f"correct {row.get('correct')!r} is not one of the options' letters")
    return option_row(text(pick(row, "question")), texts, gold, reference_rationale=row.get("rationale"))


def _choices_dict(question_field: str) -> Converter:
    """CommonsenseQA, OpenBookQA and ARC: choices {label: [...], text: [...]} and answerKey."""

    def convert(row: Mapping[str, Any]) -> Row:
        texts, labels = parse_choices(pick(row, "choices"))
        # ARC labels some questions "1".."4" instead of "A".."D": the position decides the letter.
        gold = option_letter(pick(row, "answerKey"), texts, labels)
        if gold is None:
            raise BadRow(f"answerKey {row.get('answerKey')!r} is not one of the labels {labels}")
        return option_row(
            text(pick(row, question_field)),
            texts,
            gold,
            source_id=row.get("id"),
            concept=row.get("question_concept"),
            fact=row.get("fact1"),
        )

    return convert


def _strategyqa(row: Mapping[str, Any]) -> Row:
    # ChilleD/StrategyQA: qid, term, description, question, answer (bool), facts, decomposition.
    # Only question and answer are relied on; the rest rides along in meta when present.
    gold = parse_yesno(pick(row, "answer"))
    if gold is None:
        raise BadRow(f"answer {row.get('answer')!r} is not true/false or yes/no")
    keep = ("qid", "term", "description", "facts", "decomposition")
    return Row(text(pick(row, "question")), gold, meta=present(**{k: row.get(k) for k in keep}))


def _piqa(row: Mapping[str, Any]) -> Row:
    # label 0/1 picks sol1/sol2; the test split's labels are hidden (-1).
    label = str(pick(row, "label")).strip()
    if label not in ("0", "1"):
        raise BadRow(f"label {label!r} is not 0 or 1 (unlabelled split?)")
    texts = [text(pick(row, "sol1"), "sol1"), text(pick(row, "sol2"), "sol2")]
    return option_row(text(pick(row, "goal"), "goal"), texts, LETTERS[int(label)])


def _social_i_qa(row: Mapping[str, Any]) -> Row:
    # label "1"/"2"/"3" (older copies carry a trailing newline) picks answerA/B/C.
    label = str(pick(row, "label")).strip()
    if label not in ("1", "2", "3"):
        raise BadRow(f"label {label!r} is not 1, 2 or 3")
    texts = [text(pick(row, f"answer{c}"), f"answer{c}") for c in "ABC"]
    question = join_sentences(text(pick(row, "context"), "context"), text(pick(row, "question")))
    return option_row(question, texts, LETTERS[int(label) - 1])


def _add(bench: Benchmark) -> None:
    BENCHMARKS.add(bench.name, bench)


_add(
    Benchmark(
        name="gsm8k",
        hub_id="openai/gsm8k",
        config="main",
        splits=("train", "test"),
        answer_type="number",
        task_category="math word problems",
        license="mit",
        citation="Cobbe et al. (2021). Training Verifiers to Solve Math Word Problems. https://arxiv.org/abs/2110.14168",
        convert=_gsm8k,
    )
)
_add(
    Benchmark(
        name="svamp",
        hub_id="ChilleD/SVAMP",
        config=None,
        splits=("train", "test"),
        answer_type="number",
        task_category="math word problems",
        license="mit",
        citation="Patel et al. (2021). Are NLP Models really able to Solve Simple Math Word Problems? "
        "https://arxiv.org/abs/2103.07191",
        convert=_svamp,
        note="ChilleD's 700/300 train/test split of the 1,000 SVAMP problems",
    )
)
_add(
    Benchmark(
        name="asdiv",
        hub_id="EleutherAI/asdiv",
        config="asdiv",
        splits=("validation",),
        answer_type="number",
        task_category="math word problems",
        license="cc-by-nc-4.0",
        citation="Miao et al. (2020). A Diverse Corpus for Evaluating and Developing English Math Word Problem "
        "Solvers. https://arxiv.org/abs/2106.15772",
        convert=_asdiv,
        note="only a validation split; rows whose gold is not one number are skipped",
    )
)
_add(
    Benchmark(
        name="multiarith",
        hub_id="ChilleD/MultiArith",
        config=None,
        splits=("train", "test"),
        answer_type="number",
        task_category="math word problems",
        license=None,
        citation="Roy & Roth (2015). Solving General Arithmetic Word Problems. https://arxiv.org/abs/1608.01413",
        convert=_multiarith,
        note="the Hub repo states no license",
    )
)
_add(
    Benchmark(
        name="aqua_rat",
        hub_id="deepmind/aqua_rat",
        config="raw",
        splits=("train", "validation", "test"),
        answer_type="option",
        task_category="algebra word problems, multiple choice",
        license="apache-2.0",
        citation="Ling et al. (2017). Program Induction by Rationale Generation: Learning to Solve and Explain "
        "Algebraic Word Problems. https://arxiv.org/abs/1705.04146",
        convert=_aqua_rat,
    )
)
_add(
    Benchmark(
        name="commonsense_qa",
        hub_id="tau/commonsense_qa",
        config=None,
        splits=("train", "validation"),
        answer_type="option",
        task_category="commonsense multiple choice",
        license="mit",
        citation="Talmor et al. (2019). CommonsenseQA: A Question Answering Challenge Targeting Commonsense "
        "Knowledge. https://arxiv.org/abs/1811.00937",
        convert=_choices_dict("question"),
        note="the test split hides its answers",
    )
)
_add(
    Benchmark(
        name="strategyqa",
        hub_id="ChilleD/StrategyQA",
        config=None,
        splits=("train", "test"),
        answer_type="yesno",
        task_category="implicit multi-hop yes/no questions",
        license="mit",
        citation="Geva et al. (2021). Did Aristotle Use a Laptop? A Question Answering Benchmark with Implicit "
        "Reasoning Strategies. https://arxiv.org/abs/2101.02235",
        convert=_strategyqa,
        note="columns beyond question and answer (bool) recalled from the repo, not verified; only those two "
        "are required",
    )
)
_add(
    Benchmark(
        name="openbookqa",
        hub_id="allenai/openbookqa",
        config="main",
        splits=("train", "validation", "test"),
        answer_type="option",
        task_category="elementary science multiple choice",
        license=None,
        citation="Mihaylov et al. (2018). Can a Suit of Armor Conduct Electricity? A New Dataset for Open Book "
        "Question Answering. https://arxiv.org/abs/1809.02789",
        convert=_choices_dict("question_stem"),
        note="the Hub card lists the license as unknown",
    )
)
# ybisk/piqa and allenai/social_i_qa are loading-script repos, which datasets>=4 refuses to run; these
# are the parquet copies with the same columns that lm-eval's piqa and social_iqa tasks read.
_add(
    Benchmark(
        name="piqa",
        hub_id="baber/piqa",
        config=None,
        splits=("train", "validation"),
        answer_type="option",
        task_category="physical commonsense, two choices",
        license=None,
        citation="Bisk et al. (2020). PIQA: Reasoning about Physical Commonsense in Natural Language. "
        "https://arxiv.org/abs/1911.11641",
        convert=_piqa,
        note="parquet copy of ybisk/piqa; its test split hides the labels; the Hub card lists the license as unknown",
    )
)
_add(
    Benchmark(
        name="social_i_qa",
        hub_id="lighteval/siqa",
        config=None,
        splits=("train", "validation"),
        answer_type="option",
        task_category="social commonsense, three choices",
        license=None,
        citation="Sap et al. (2019). Social IQa: Commonsense Reasoning about Social Interactions. "
        "https://arxiv.org/abs/1904.09728",
        convert=_social_i_qa,
        note="parquet copy of allenai/social_i_qa; the Hub card states no license",
    )
)
for _name, _config in (("arc_easy", "ARC-Easy"), ("arc_challenge", "ARC-Challenge")):
    _add(
        Benchmark(
            name=_name,
            hub_id="allenai/ai2_arc",
            config=_config,
            splits=("train", "validation", "test"),
            answer_type="option",
            task_category="grade-school science multiple choice",
            license="cc-by-sa-4.0",
            citation="Clark et al. (2018). Think you have Solved Question Answering? Try ARC, the AI2 Reasoning "
            "Challenge. https://arxiv.org/abs/1803.05457",
            convert=_choices_dict("question"),
            note="a few questions label their choices 1-4; they become A-D by position",
        )
    )

# ---- mapped rows: hf:org/name and file: sources ---------------------------------------------------

MAX_LABELS = 20  # a label column with more distinct values is free text, not a label set


def detect_answer_type(golds: list[Any], choices: list[Any] | None) -> str:
    """option where each gold names one of its row's choices; else number, yes/no, or label."""
    if choices is not None and all(_is_option(g, c) for g, c in zip(golds, choices, strict=True)):
        return "option"
    if all(parse_number(g) is not None for g in golds):
        return "number"
    if all(parse_yesno(g) is not None for g in golds):
        return "yesno"
    return "label"


def _is_option(gold: Any, choices: Any) -> bool:
    try:
        texts, labels = parse_choices(choices)
    except BadRow:
        return False
    return gold is not None and option_letter(str(gold), texts, labels) is not None


def mapped_gold(answer_type: str, value: Any, choices: Any) -> tuple[str, tuple[str, ...]]:
    """The canonical gold of one row, and the row's options (for option and label answers)."""
    texts, labels = parse_choices(choices) if choices is not None else ([], [])
    if answer_type == "option":
        gold = option_letter(str(value), texts, labels) if value is not None else None
    elif answer_type == "number":
        gold = parse_number(value)
    elif answer_type == "yesno":
        gold = parse_yesno(value)
    else:
        gold = str(value).strip() if value is not None else None
        if gold and texts and gold not in texts:
            raise BadRow(f"label {gold!r} is not one of the options {texts}")
    if not gold:
        among = f" among the options {texts}" if answer_type == "option" else ""
        raise BadRow(f"answer {value!r} is not a valid {answer_type}{among}")
    return gold, tuple(texts) if answer_type in ("option", "label") else ()


def label_set(golds: list[Any]) -> tuple[str, ...]:
    """The sorted distinct golds of a label column, or () when there are too many to be a set."""
    distinct = sorted({str(g).strip() for g in golds if g is not None and str(g).strip()})
    return tuple(distinct) if len(distinct) <= MAX_LABELS else ()


# ---- value helpers ------------------------------------------------------------------------------

_NUMBER = re.compile(r"[+-]?(\d{1,3}(,\d{3})+|\d+)?(\.\d+)?")
_FRACTION = re.compile(r"[+-]?\d+/\d+")
_YES = {"yes", "true", "y"}
_NO = {"no", "false", "n"}
_PREFIX = re.compile(r"\s*\(?([A-Z])\s*[).:]\s*")


def parse_number(value: Any) -> str | None:
    """Canonical text of a numeric gold ("1,000" -> "1000", 8.0 -> "8", "$3.50" -> "3.5"), or None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        value = repr(value)
    if not isinstance(value, str):
        return None
    s = value.strip().replace("$", "").rstrip(".").strip()
    if _FRACTION.fullmatch(s):
        return s.lstrip("+")
    if not s or not _NUMBER.fullmatch(s) or not any(c.isdigit() for c in s):
        return None
    try:
        d = Decimal(s.replace(",", ""))
    except InvalidOperation:
        return None
    out = format(d.normalize(), "f")
    return "0" if out in ("-0", "+0") else out


def parse_yesno(value: Any) -> str | None:
    """Booleans and yes/no/true/false text as "yes" or "no"; None for anything else."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        s = value.strip().lower()
        return "yes" if s in _YES else "no" if s in _NO else None
    return None


def parse_choices(value: Any) -> tuple[list[str], list[str]]:
    """Option texts in order, and their labels ([] when unlabelled).

    Takes {"label": [...], "text": [...]}, a list of texts (prefixes like "A)" are split off), a
    list of {"label", "text"} dicts, or any of those as JSON text (a CSV cell).
    """
    if isinstance(value, str) and value.strip()[:1] in "[{":
        import json

        try:
            value = json.loads(value)
        except json.JSONDecodeError as e:
            raise BadRow(f"choices are not valid JSON: {e}") from None
    if isinstance(value, Mapping) and "text" in value:
        texts, labels = list(value["text"]), [str(x).strip() for x in value.get("label") or []]
    elif isinstance(value, list | tuple) and value and all(isinstance(v, Mapping) for v in value):
        texts, labels = [v.get("text") for v in value], [str(v.get("label", "")).strip() for v in value]
    elif isinstance(value, list | tuple) and value:
        texts, labels = _split_prefixes([str(v) for v in value])
    else:
        raise BadRow(f"choices {value!r} are not a list or a {{label, text}} mapping")
    if not texts or any(not isinstance(t, str) or not t.strip() for t in texts):
        raise BadRow(f"choices {value!r} include an empty option")
    if len(texts) > len(LETTERS) or (labels and len(labels) != len(texts)):
        raise BadRow(f"choices {value!r} have mismatched labels or too many options")
    return [t.strip() for t in texts], labels


def _split_prefixes(items: list[str]) -> tuple[list[str], list[str]]:
    # Only when every option carries its own letter in order ("A)21", "B)21.5"): a text that merely
    # starts with "A." must stay whole.
    matches = [_PREFIX.match(s) for s in items]
    if all(m and m.group(1) == LETTERS[i] for i, m in enumerate(matches)):
        return [s[m.end() :] for s, m in zip(items, matches, strict=True)], list(LETTERS[: len(items)])
    return items, []


def option_letter(gold: Any, texts: list[str], labels: list[str]) -> str | None:
    """The letter (A, B, ...) of the gold option: by label, by letter, or by exact text; else None."""
    if not isinstance(gold, str):
        return None
    g = gold.strip()
    if labels and g in labels:
        return LETTERS[labels.index(g)]
    if len(g) == 1 and g.upper() in LETTERS[: len(texts)]:
        return g.upper()
    return LETTERS[texts.index(g)] if g in texts else None
