"""PIQA rows -> the shared doc shape (see eval_tasks/_common/utils.py): which of two solutions
reaches the goal, as a two-option question."""


def _row(doc: dict, idx: int) -> dict:
    return {
        "id": f"piqa-{idx}",
        "question": f"Which solution achieves the goal? Goal: {doc['goal'].strip()}",
        "choices": [doc["sol1"].strip(), doc["sol2"].strip()],
        "gold": "AB"[int(doc["label"])],
        "answer_type": "option",
        "rationale": "",
    }


def process_docs(dataset):
    return dataset.map(_row, with_indices=True, remove_columns=dataset.column_names)
