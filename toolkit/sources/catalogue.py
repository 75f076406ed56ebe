"""The known benchmarks behind `hf:NAME`: the one definition the builders and the eval tasks share.

Each benchmark names its Hub repo, config, labelled splits, answer type, license and citation, a
small converter from a raw row to (question, gold, choices, meta) (see `converters`), and what the
eval task scores (`eval_split`, `fewshot_split`). `eval_tasks/generate_tasks.py` writes the lm-eval
tasks from these entries and the tasks read their rows through the same converter
(`toolkit.evaluate.docs`), so a student is scored on exactly the text it was trained on. The
labelled benchmarks (`LABELLED`, at the end) and the gym eval settings (`GYM_EVAL_*`) are entries
here too: this module is the one table the builders and eval_tasks/ read. Where a
schema or a mirror needs explaining, the entry's `note` says so. The field mapping used for any
other table (`hf:org/name`, `file:PATH`) is in `mapping`; canonical golds in `normalize`.
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
    _math,
    _mmlu,
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
    title: str  # how papers and tables name it
    hub_id: str
    config: str | None
    splits: tuple[str, ...]  # splits with public gold labels
    answer_type: AnswerType
    task_category: str
    license: str | None
    citation: str
    convert: Converter
    eval_split: str  # the split the eval task scores: the test split, or validation where test hides gold
    fewshot_split: str | None  # where the eval task's few-shot examples come from; None: no other split
    note: str = ""


BENCHMARKS: Registry[Benchmark] = Registry("benchmark")

# The reasoning-gym tasks the eval suite scores, and the problems it scores them on:
# load_source(f"gym:{task}", split=GYM_EVAL_SPLIT, seed=GYM_EVAL_SEED, limit=GYM_EVAL_SIZE). The split
# draws from its own seed range (toolkit.sources.gym.GYM_SPLIT_OFFSETS), so a build on the default
# split "train" never trains on them. Their answer types are toolkit.sources.gym.GYM_ANSWER_TYPES.
GYM_EVAL_TASKS = ("gsm_symbolic", "basic_arithmetic", "chain_sum", "leg_counting", "syllogism")
GYM_EVAL_SPLIT = "test"
GYM_EVAL_SEED = 31337
GYM_EVAL_SIZE = 200


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
    # An eval split without gold can't be scored, and few-shot examples drawn from it would leak.
    if bench.eval_split not in bench.splits or bench.fewshot_split not in (*bench.splits, None):
        raise ValueError(f"{bench.name}: eval and few-shot splits must be labelled splits")
    if bench.fewshot_split == bench.eval_split:
        raise ValueError(f"{bench.name}: few-shot examples must not come from the evaluation split")
    BENCHMARKS.add(bench.name, bench)


_add(
    Benchmark(
        name="gsm8k",
        title="GSM8K",
        hub_id="openai/gsm8k",
        config="main",
        splits=("train", "test"),
        answer_type="number",
        task_category="math word problems",
        license="mit",
        citation="Cobbe et al. (2021). Training Verifiers to Solve Math Word Problems. https://arxiv.org/abs/2110.14168",
        convert=_gsm8k,
        eval_split="test",
        fewshot_split="train",
        note="few-shot targets are the worked solutions, calculator annotations removed",
    )
)
_add(
    Benchmark(
        name="svamp",
        title="SVAMP",
        hub_id="ChilleD/SVAMP",
        config=None,
        splits=("train", "test"),
        answer_type="number",
        task_category="math word problems",
        license="mit",
        citation="Patel et al. (2021). Are NLP Models really able to Solve Simple Math Word Problems? "
        "https://arxiv.org/abs/2103.07191",
        convert=_svamp,
        eval_split="test",
        fewshot_split="train",
        note="ChilleD's 700/300 train/test split of the 1,000 SVAMP problems",
    )
)
_add(
    Benchmark(
        name="asdiv",
        title="ASDiv",
        hub_id="EleutherAI/asdiv",
        config="asdiv",
        splits=("validation",),
        answer_type="number",
        task_category="math word problems",
        license="cc-by-nc-4.0",
        citation="Miao et al. (2020). A Diverse Corpus for Evaluating and Developing English Math Word Problem "
        "Solvers. https://arxiv.org/abs/2106.15772",
        convert=_asdiv,
        eval_split="validation",
        fewshot_split=None,
        note="only a validation split (so no few-shot split); rows whose gold is not one number are skipped",
    )
)
_add(
    Benchmark(
        name="multiarith",
        title="MultiArith",
        hub_id="ChilleD/MultiArith",
        config=None,
        splits=("train", "test"),
        answer_type="number",
        task_category="math word problems",
        license=None,
        citation="Roy & Roth (2015). Solving General Arithmetic Word Problems. https://arxiv.org/abs/1608.01413",
        convert=_multiarith,
        eval_split="test",
        fewshot_split="train",
        note="the Hub repo states no license",
    )
)
_add(
    Benchmark(
        name="aqua_rat",
        title="AQuA-RAT",
        hub_id="deepmind/aqua_rat",
        config="raw",
        splits=("train", "validation", "test"),
        answer_type="option",
        task_category="algebra word problems, multiple choice",
        license="apache-2.0",
        citation="Ling et al. (2017). Program Induction by Rationale Generation: Learning to Solve and Explain "
        "Algebraic Word Problems. https://arxiv.org/abs/1705.04146",
        convert=_aqua_rat,
        eval_split="test",
        fewshot_split="train",
        note="few-shot targets are the dataset's rationales",
    )
)
_add(
    Benchmark(
        name="commonsense_qa",
        title="CommonsenseQA",
        hub_id="tau/commonsense_qa",
        config=None,
        splits=("train", "validation"),
        answer_type="option",
        task_category="commonsense multiple choice",
        license="mit",
        citation="Talmor et al. (2019). CommonsenseQA: A Question Answering Challenge Targeting Commonsense "
        "Knowledge. https://arxiv.org/abs/1811.00937",
        convert=_choices_dict("question"),
        eval_split="validation",
        fewshot_split="train",
        note="the test split hides its answers, so validation is the evaluation set",
    )
)
_add(
    Benchmark(
        name="strategyqa",
        title="StrategyQA",
        hub_id="ChilleD/StrategyQA",
        config=None,
        splits=("train", "test"),
        answer_type="yesno",
        task_category="implicit multi-hop yes/no questions",
        license="mit",
        citation="Geva et al. (2021). Did Aristotle Use a Laptop? A Question Answering Benchmark with Implicit "
        "Reasoning Strategies. https://arxiv.org/abs/2101.02235",
        convert=_strategyqa,
        eval_split="test",
        fewshot_split="train",
        note="columns beyond question and answer (bool) recalled from the repo, not verified; only those two "
        "are required",
    )
)
_add(
    Benchmark(
        name="openbookqa",
        title="OpenBookQA",
        hub_id="allenai/openbookqa",
        config="main",
        splits=("train", "validation", "test"),
        answer_type="option",
        task_category="elementary science multiple choice",
        license=None,
        citation="Mihaylov et al. (2018). Can a Suit of Armor Conduct Electricity? A New Dataset for Open Book "
        "Question Answering. https://arxiv.org/abs/1809.02789",
        convert=_choices_dict("question_stem"),
        eval_split="validation",
        fewshot_split="train",
        note="scored on the validation split, as Ranaldi & Freitas did ('the validation versions found on "
        "huggingface as test data'); the Hub card lists the license as unknown",
    )
)
# PIQA and Social IQa: the original repos (ybisk/piqa, allenai/social_i_qa) are loading-script repos,
# which datasets>=4 refuses to run. Their bot-made refs/convert/parquet branches load, but only with a
# pinned revision and that branch's subset name ("default", not the script's), which every reader
# (builder, eval task, a user's --revision) would have to repeat. baber/piqa and lighteval/siqa are
# plain parquet copies with the original columns that load with `load_dataset(hub_id, split=...)`
# alone, and they are what lm-eval's own piqa and social_iqa tasks read (lm-eval 0.4.13; piqa moved
# there in lm-evaluation-harness PR #2790), so a hubtool score sits beside the harness's on the same rows.
_add(
    Benchmark(
        name="piqa",
        title="PIQA",
        hub_id="baber/piqa",
        config=None,
        splits=("train", "validation"),
        answer_type="option",
        task_category="physical commonsense, two choices",
        license=None,
        citation="Bisk et al. (2020). PIQA: Reasoning about Physical Commonsense in Natural Language. "
        "https://arxiv.org/abs/1911.11641",
        convert=_piqa,
        eval_split="validation",
        fewshot_split="train",
        note="parquet copy of ybisk/piqa (datasets>=4 can't run the original's loading script; lm-eval reads "
        "this copy too); the test split hides the labels, so validation is the evaluation set; the Hub card "
        "lists the license as unknown",
    )
)
_add(
    Benchmark(
        name="social_i_qa",
        title="Social IQa",
        hub_id="lighteval/siqa",
        config=None,
        splits=("train", "validation"),
        answer_type="option",
        task_category="social commonsense, three choices",
        license=None,
        citation="Sap et al. (2019). Social IQa: Commonsense Reasoning about Social Interactions. "
        "https://arxiv.org/abs/1904.09728",
        convert=_social_i_qa,
        eval_split="validation",
        fewshot_split="train",
        note="parquet copy of allenai/social_i_qa (datasets>=4 can't run the original's loading script; "
        "lm-eval reads this copy too); only train and validation are public, so validation is the "
        "evaluation set; the Hub card states no license",
    )
)
for _name, _config in (("arc_easy", "ARC-Easy"), ("arc_challenge", "ARC-Challenge")):
    _add(
        Benchmark(
            name=_name,
            title=_config,
            hub_id="allenai/ai2_arc",
            config=_config,
            splits=("train", "validation", "test"),
            answer_type="option",
            task_category="grade-school science multiple choice",
            license="cc-by-sa-4.0",
            citation="Clark et al. (2018). Think you have Solved Question Answering? Try ARC, the AI2 Reasoning "
            "Challenge. https://arxiv.org/abs/1803.05457",
            convert=_choices_dict("question"),
            eval_split="test",
            fewshot_split="train",
            note="a few questions label their choices 1-4; they become A-D by position",
        )
    )
_add(
    Benchmark(
        name="hendrycks_math",
        title="MATH",
        hub_id="DigitalLearningGmbH/MATH-lighteval",
        config="default",
        splits=("train", "test"),
        answer_type="math",
        task_category="competition mathematics",
        license="mit",
        citation="Hendrycks et al. (2021). Measuring Mathematical Problem Solving With the MATH Dataset. "
        "https://arxiv.org/abs/2103.03874",
        convert=_math,
        eval_split="test",
        fewshot_split="train",
        note="the parquet copy lighteval and verl read (the original hendrycks repo is gone); gold is the last "
        "\\boxed{} of the solution, checked with math-verify (answer type math); a solution without one is skipped",
    )
)
_add(
    Benchmark(
        name="mmlu",
        title="MMLU",
        hub_id="cais/mmlu",
        config="all",
        splits=("auxiliary_train", "dev", "validation", "test"),
        answer_type="option",
        task_category="multitask knowledge multiple choice",
        license="mit",
        citation="Hendrycks et al. (2021). Measuring Massive Multitask Language Understanding. "
        "https://arxiv.org/abs/2009.03300",
        convert=_mmlu,
        eval_split="test",
        fewshot_split="dev",
        note="all 57 subjects in one config; scored generatively (chain of thought, then the letter), not by "
        "log-likelihood as lm-eval's mmlu task does",
    )
)


# ---- labelled benchmarks: a fixed label set, stored on the Hub as ClassLabel ids ------------------
# Counterfactual distillation builds from these (`hf:imdb`, or `hf:stanfordnlp/imdb`) and its eval tasks
# (eval_tasks/counterfactual/) score them; both read a row with `toolkit.sources.labelled`, so label id i
# is `labels[i]` on both sides. `labels` is the Hub's ClassLabel order (the datasets' `features`).
SENTIMENT_LABELS = ("negative", "positive")
NLI_LABELS = ("entailment", "neutral", "contradiction")


@dataclass(frozen=True, slots=True)
class LabelledBenchmark:
    """One labelled catalogue entry."""

    name: str
    title: str
    hub_id: str
    config: str | None
    labels: tuple[str, ...]  # the ClassLabel names in id order; id -1 (no gold) is skipped
    text_fields: tuple[str, ...]  # the question: one column, or premise and hypothesis (see labelled.nli_question)
    splits: tuple[str, ...]  # splits with gold labels
    task_category: str
    license: str | None
    citation: str
    eval_split: str  # the split the eval task scores
    fewshot_split: str  # where its few-shot examples come from
    note: str = ""


LABELLED: Registry[LabelledBenchmark] = Registry("labelled benchmark")


def labelled_benchmarks() -> list[str]:
    """Names that `hf:NAME` accepts for a labelled source (counterfactual distillation)."""
    return LABELLED.names()


def labelled_info(name: str) -> LabelledBenchmark:
    """The labelled entry for `name`; UserError with the known names on a miss."""
    return LABELLED.get(name)


def _add_labelled(bench: LabelledBenchmark) -> None:
    if bench.eval_split not in bench.splits or bench.fewshot_split not in bench.splits:
        raise ValueError(f"{bench.name}: eval and few-shot splits must be labelled splits")
    if bench.fewshot_split == bench.eval_split:
        raise ValueError(f"{bench.name}: few-shot examples must not come from the evaluation split")
    LABELLED.add(bench.name, bench)


_SNLI = "Bowman et al. (2015). A large annotated corpus for learning natural language inference. https://arxiv.org/abs/1508.05326"
_add_labelled(
    LabelledBenchmark(
        name="imdb",
        title="IMDb",
        hub_id="stanfordnlp/imdb",
        config=None,
        labels=SENTIMENT_LABELS,
        text_fields=("text",),
        splits=("train", "test"),
        task_category="sentiment classification",
        license="other",
        citation="Maas et al. (2011). Learning Word Vectors for Sentiment Analysis. https://aclanthology.org/P11-1015/",
        eval_split="test",
        fewshot_split="train",
        note="the test split is sorted by label (the eval task shuffles it once); `unsupervised` has no labels",
    )
)
_add_labelled(
    LabelledBenchmark(
        name="sst2",
        title="SST-2",
        hub_id="stanfordnlp/sst2",
        config=None,
        labels=SENTIMENT_LABELS,
        text_fields=("sentence",),
        splits=("train", "validation"),
        task_category="sentiment classification",
        license=None,
        citation="Socher et al. (2013). Recursive Deep Models for Semantic Compositionality Over a Sentiment "
        "Treebank. https://aclanthology.org/D13-1170/",
        eval_split="validation",
        fewshot_split="train",
        note="the test split hides its labels (-1), so validation is the evaluation set",
    )
)
_add_labelled(
    LabelledBenchmark(
        name="snli",
        title="SNLI",
        hub_id="stanfordnlp/snli",
        config=None,
        labels=NLI_LABELS,
        text_fields=("premise", "hypothesis"),
        splits=("train", "validation", "test"),
        task_category="natural language inference",
        license="cc-by-sa-4.0",
        citation=_SNLI,
        eval_split="test",
        fewshot_split="train",
        note="pairs whose annotators did not agree have label -1 and are skipped",
    )
)
_add_labelled(
    LabelledBenchmark(
        name="mnli",
        title="MultiNLI",
        hub_id="nyu-mll/multi_nli",
        config=None,
        labels=NLI_LABELS,
        text_fields=("premise", "hypothesis"),
        splits=("train", "validation_matched", "validation_mismatched"),
        task_category="natural language inference",
        license=None,
        citation="Williams et al. (2018). A Broad-Coverage Challenge Corpus for Sentence Understanding through "
        "Inference. https://arxiv.org/abs/1704.05426",
        eval_split="validation_mismatched",
        fewshot_split="train",
        note="scored on validation_mismatched: genres SNLI never saw",
    )
)
