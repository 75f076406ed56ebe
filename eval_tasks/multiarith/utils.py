"""MultiArith rows -> the shared doc shape (see eval_tasks/_common/utils.py)."""

from toolkit.answers import normalize_answer


def _row(doc: dict, idx: int) -> dict:
    return {
        "id": f"multiarith-{idx}",
        "question": doc["question"].strip(),
        "choices": [],
        "gold": normalize_answer(str(doc["final_ans"]), "number") or str(doc["final_ans"]),
        "answer_type": "number",
        "rationale": "",
    }


def process_docs(dataset):
    return dataset.map(_row, with_indices=True, remove_columns=dataset.column_names)
