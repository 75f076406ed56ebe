"""Social IQa rows -> the shared doc shape (see eval_tasks/_common/utils.py)."""


def _row(doc: dict, idx: int) -> dict:
    return {
        "id": f"social_i_qa-{idx}",
        "question": f"{doc['context'].strip()} {doc['question'].strip()}",
        "choices": [doc["answerA"].strip(), doc["answerB"].strip(), doc["answerC"].strip()],
        "gold": "ABC"[int(doc["label"]) - 1],  # labels are "1", "2", "3"
        "answer_type": "option",
        "rationale": "",
    }


def process_docs(dataset):
    return dataset.map(_row, with_indices=True, remove_columns=dataset.column_names)
