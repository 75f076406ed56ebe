"""StrategyQA rows -> the shared doc shape (see eval_tasks/_common/utils.py)."""


def _row(doc: dict, idx: int) -> dict:
    answer = doc["answer"]
    yes = answer if isinstance(answer, bool) else str(answer).strip().lower() in ("true", "yes")
    return {
        "id": str(doc.get("qid") or f"strategyqa-{idx}"),
        "question": doc["question"].strip(),
        "choices": [],
        "gold": "yes" if yes else "no",
        "answer_type": "yesno",
        "rationale": "",
    }


def process_docs(dataset):
    return dataset.map(_row, with_indices=True, remove_columns=dataset.column_names)
