"""Counterfactual distillation's eval tasks: benchmark rows -> the shared doc shape, the prompt the
builder trains students on, and contrast-set consistency.

Doc shape (see eval_tasks/_common/utils.py): question, choices (here: the label set), gold,
answer_type ("label"), rationale; contrast sets add `group` (rows that are minimal edits of one
another, with different labels) and `group_size`.

    consistency = share of contrast groups whose every member is answered right (Gardner et al., 2020)

so a student only scores on a group if it changes its answer when the label flips. Groups cut by
--limit are left out of it (their docs still count for exact_match).
"""

from __future__ import annotations

import math
from collections import defaultdict

from toolkit import answers
from toolkit.evaluate.report import MISS  # what hubtool's filters yield when no answer could be read
from toolkit.methods.counterfactual import student_messages
from toolkit.records import Problem
from toolkit.sources import load_source
from toolkit.sources.catalogue import labelled_info
from toolkit.sources.labelled import labelled_problems, nli_question
from toolkit.sources.syllogism_contrast import contrast_set, gym_answer_checks

SHUFFLE_SEED = 1234  # imdb's test split is sorted by label: shuffled once, so --limit sees both


def _doc(doc_id: str, question: str, labels: tuple[str, ...], gold: str, group: str = "", size: int = 0,
         answer_type: str = "label") -> dict:  # fmt: skip
    return {"id": doc_id, "question": question.strip(), "choices": list(labels), "gold": gold,
            "answer_type": answer_type, "rationale": "", "group": group, "group_size": size}  # fmt: skip


def _problem(doc: dict) -> Problem:
    return Problem(id=str(doc.get("id", "")), source="eval", question=doc["question"], gold=doc["gold"],
                   answer_type=doc["answer_type"], choices=tuple(doc["choices"]))  # fmt: skip


def doc_to_text(doc: dict) -> str:
    """The counterfactual builder's student prompt: question, label set, "think step by step"."""
    return student_messages(_problem(doc))[-1]["content"]


def doc_to_target(doc: dict) -> str:
    return answers.format_answer_line(doc["gold"])


def _labelled(dataset, name: str):
    """The eval split's rows -> docs, read as a build reads them (`toolkit.sources.labelled`: the
    catalogue's label order; rows without a gold label, -1, dropped)."""
    bench = labelled_info(name)
    problems = labelled_problems(name, dataset, bench.eval_split)
    return type(dataset).from_list([_doc(f"{name}-{p.index}", p.question, p.choices, p.gold) for p in problems])


# -- in-domain and out-of-domain benchmarks: the catalogue's labelled entries -----------------------
def process_imdb(dataset):
    """stanfordnlp/imdb: text, label."""
    return _labelled(dataset, "imdb").shuffle(seed=SHUFFLE_SEED).flatten_indices()


def process_sst2(dataset):
    """stanfordnlp/sst2: idx, sentence, label (-1 in the unlabelled test split)."""
    return _labelled(dataset, "sst2")


def process_snli(dataset):
    """stanfordnlp/snli: premise, hypothesis, label (-1 where annotators did not agree)."""
    return _labelled(dataset, "snli")


def process_mnli(dataset):
    """nyu-mll/multi_nli: premise, hypothesis, label, genre, ..."""
    return _labelled(dataset, "mnli")


# -- contrast sets: counterfactually augmented data (Kaushik et al., ICLR 2020) --------------------
def process_imdb_cad(dataset):
    """CAD-IMDb, combined/paired/test_paired.tsv: Sentiment (Negative/Positive), Text, batch_id.
    The two rows of a batch_id are a review and its human edit with the other label (imdb's label set)."""
    sizes = defaultdict(int)
    for batch in dataset["batch_id"]:
        sizes[str(batch)] += 1

    def convert(d: dict, i: int) -> dict:
        group = f"cad-imdb-{d['batch_id']}"
        labels = labelled_info("imdb").labels
        return _doc(f"{group}-{i}", d["Text"], labels, d["Sentiment"].strip().lower(), group, sizes[str(d["batch_id"])])

    return _grouped(dataset.map(convert, with_indices=True, remove_columns=dataset.column_names))


def process_snli_cad(dataset):
    """CAD-SNLI test, three tsv files read in this order (sentence1, sentence2, gold_label): n originals,
    then 2n revised hypotheses, then 2n revised premises, each pair of revisions in its original's order.
    A group is an original and its four edits, each with another label than the original's."""
    n, rows = len(dataset) // 5, dataset.to_list()
    if not rows or len(rows) != 5 * n:
        raise ValueError(f"CAD-SNLI: {len(rows)} rows is not originals + 2x revised hypotheses + 2x revised premises")
    docs, labels = [], labelled_info("snli").labels
    for i, original in enumerate(rows[:n]):
        group = f"cad-snli-{i}"
        members = [original, rows[n + 2 * i], rows[n + 2 * i + 1], rows[3 * n + 2 * i], rows[3 * n + 2 * i + 1]]
        for edit, kept in zip(members[1:], ("sentence1",) * 2 + ("sentence2",) * 2):
            if " ".join(edit[kept].split()) != " ".join(original[kept].split()):
                raise ValueError(f"CAD-SNLI row order: {group} edits {edit} do not keep {kept} of {original}")
        for j, row in enumerate(members):
            question = nli_question(row["sentence1"], row["sentence2"])
            docs.append(_doc(f"{group}-{j}", question, labels, row["gold_label"].strip(), group, len(members)))
    return type(dataset).from_list(docs)


# -- reasoning-gym syllogisms: made offline, the contrast set by rule (toolkit.sources.syllogism_contrast) --
def _syllogisms(gym_split: str, gym_seed: int, gym_size: int):
    return load_source("gym:syllogism", split=gym_split, seed=gym_seed, limit=gym_size).problems


def gym_syllogism(gym_split: str, gym_seed: int, gym_size: int, **_ignored):
    """`custom_dataset` of hubtool_cf_gym_syllogism: the gym test problems (the gym_syllogism task's own
    documents) whose gym answer a model check confirms (about 1 in 8 is a wrong "Yes"; see
    toolkit.sources.syllogism_contrast), asked with the counterfactual student prompt, yes/no answers."""
    import datasets

    problems = [p for p in _syllogisms(gym_split, gym_seed, gym_size) if gym_answer_checks(p)]
    docs = [_doc(p.id, p.question, (), p.gold, answer_type="yesno") for p in problems]
    return datasets.DatasetDict({gym_split: datasets.Dataset.from_list(docs)})


def gym_syllogism_contrast(gym_split: str, gym_seed: int, gym_size: int, **_ignored):
    """`custom_dataset` of hubtool_cf_gym_syllogism_contrast: each of the first `gym_size` test
    syllogisms that has one beside its one-quantifier edit with the other answer (a group of two)."""
    import datasets

    pairs, _ = contrast_set(_syllogisms(gym_split, gym_seed, gym_size), seed=gym_seed)
    docs = [_doc(member.id, member.question, (), member.gold, f"syllogism-{pair.original.id}", 2, "yesno")
            for pair in pairs for member in (pair.original, pair.edit)]  # fmt: skip
    return datasets.DatasetDict({gym_split: datasets.Dataset.from_list(docs)})


def _grouped(docs):
    """Members of a group next to each other (in first-seen order), so --limit takes whole groups."""
    first: dict[str, int] = {}
    for i, group in enumerate(docs["group"]):
        first.setdefault(group, i)
    order = sorted(range(len(docs)), key=lambda i: (first[docs[i]["group"]], i))
    return docs.select(order).flatten_indices()


# -- scoring --------------------------------------------------------------------------------------
def _right(doc: dict, pred: str) -> bool:
    return pred != MISS and answers.is_correct(pred, doc["gold"], doc["answer_type"], tuple(doc["choices"]))


def process_contrast(doc: dict, results: list[str]) -> dict:
    """exact_match per doc, and what `consistency` needs to judge the doc's group."""
    right = _right(doc, results[0])
    return {"exact_match": float(right), "consistency": (doc["group"], doc["group_size"], right)}


def consistency(items: list[tuple[str, int, bool]]) -> float:
    """Share of complete contrast groups answered right throughout; NaN when no group is complete."""
    members: dict[str, list[bool]] = defaultdict(list)
    sizes: dict[str, int] = {}
    for group, size, right in items:
        members[group].append(bool(right))
        sizes[group] = int(size)
    complete = [all(rights) for group, rights in members.items() if len(rights) == sizes[group]]
    return sum(complete) / len(complete) if complete else math.nan
