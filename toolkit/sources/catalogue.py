"""The known benchmarks behind `hf:NAME`.

Each benchmark names its Hub repo, config, labelled splits, answer type, license and citation, and a
small converter from a raw row to (question, gold, choices, meta) (see `converters`); where a schema
was uncertain, the entry's `note` says so. The field mapping used for any other table
(`hf:org/name`, `file:PATH`) is in `mapping`; canonical golds in `normalize`.
"""

from __future__ import annotations

from dataclasses import dataclass

from toolkit.records import AnswerType
from toolkit.registry import Registry
from toolkit.sources.converters import (
    Converter,
    _aqua_rat,
    _asdiv,
    _choices_dict,
    _gsm8k,
    _multiarith,
    _piqa,
    _social_i_qa,
    _strategyqa,
    _svamp,
)


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
