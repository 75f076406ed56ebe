"""GSM8K rows -> the shared doc shape (see eval_tasks/_common/utils.py)."""

import re

_CALC = re.compile(r"<<[^>]*>>")  # calculator annotations: "48/2 = <<48/2=24>>24"


def _row(doc: dict, idx: int) -> dict:
    work, _, final = doc["answer"].rpartition("####")
    return {
        "id": f"gsm8k-{idx}",
        "question": doc["question"].strip(),
        "choices": [],
        "gold": final.strip().replace(",", ""),
        "answer_type": "number",
        "rationale": _CALC.sub("", work).strip(),
    }


def process_docs(dataset):
    return dataset.map(_row, with_indices=True, remove_columns=dataset.column_names)
