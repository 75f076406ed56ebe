"""ARC (Easy and Challenge) rows -> the shared doc shape (see eval_tasks/_common/utils.py).

A few ARC questions label their options "1".."4" instead of "A".."D"; gold is taken by position,
so every question is answered with letters.
"""

from toolkit.answers import option_letters


def _row(doc: dict, idx: int) -> dict:
    labels, texts = doc["choices"]["label"], doc["choices"]["text"]
    return {
        "id": doc.get("id") or f"arc-{idx}",
        "question": doc["question"].strip(),
        "choices": list(texts),
        "gold": option_letters(len(labels))[labels.index(doc["answerKey"])],
        "answer_type": "option",
        "rationale": "",
    }


def process_docs(dataset):
    return dataset.map(_row, with_indices=True, remove_columns=dataset.column_names)
