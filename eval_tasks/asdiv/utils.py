"""ASDiv rows -> the shared doc shape (see eval_tasks/_common/utils.py).

Gold answers carry units ("9 (apples)"); the unit is dropped. The few problems whose answer is not
a single number (ratios such as "2:3", lists such as "5,7") are left out: a numeric extractor cannot
answer them, so keeping them would only lower every model's score by the same constant.
"""

import re

from toolkit.answers import normalize_answer

_ONE_NUMBER = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:/\d+)?|-?\.\d+")


def _gold(doc: dict) -> str | None:
    raw = doc["answer"].split(" (")[0].strip()
    return normalize_answer(raw, "number") if _ONE_NUMBER.fullmatch(raw) else None


def _row(doc: dict, idx: int) -> dict:
    return {
        "id": f"asdiv-{idx}",
        "question": f"{doc['body'].strip()} {doc['question'].strip()}",
        "choices": [],
        "gold": _gold(doc) or "",
        "answer_type": "number",
        "rationale": "",
    }


def process_docs(dataset):
    rows = dataset.map(_row, with_indices=True, remove_columns=dataset.column_names)
    return rows.filter(lambda doc: doc["gold"] != "")
