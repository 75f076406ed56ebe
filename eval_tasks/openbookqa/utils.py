"""OpenBookQA rows -> the shared doc shape (see eval_tasks/_common/utils.py)."""

from toolkit.answers import option_letters


def _row(doc: dict, idx: int) -> dict:
    labels, texts = doc["choices"]["label"], doc["choices"]["text"]
    return {
        "id": doc.get("id") or f"openbookqa-{idx}",
        "question": doc["question_stem"].strip(),
        "choices": list(texts),
        "gold": option_letters(len(labels))[labels.index(doc["answerKey"])],
        "answer_type": "option",
        "rationale": "",
    }


def process_docs(dataset):
    return dataset.map(_row, with_indices=True, remove_columns=dataset.column_names)
