"""AQuA-RAT rows -> the shared doc shape (see eval_tasks/_common/utils.py).

Options come as "A)21"; the letter prefix is dropped because the prompt renders its own letters.
"""

import re

_PREFIX = re.compile(r"^\s*\(?[A-Ea-e]\s*\)\s*")


def _row(doc: dict, idx: int) -> dict:
    return {
        "id": f"aqua_rat-{idx}",
        "question": doc["question"].strip(),
        "choices": [_PREFIX.sub("", option).strip() for option in doc["options"]],
        "gold": doc["correct"].strip().upper(),
        "answer_type": "option",
        "rationale": doc["rationale"].strip(),
    }


def process_docs(dataset):
    return dataset.map(_row, with_indices=True, remove_columns=dataset.column_names)
