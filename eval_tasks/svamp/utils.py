"""SVAMP rows -> the shared doc shape (see eval_tasks/_common/utils.py)."""

from toolkit.answers import normalize_answer


def _row(doc: dict, idx: int) -> dict:
    body, question = doc["Body"].strip(), doc["Question"].strip()
    body = body if body.endswith((".", "?", "!")) else body + "."
    return {
        "id": f"svamp-{doc.get('ID') or idx}",
        "question": f"{body} {question}",
        "choices": [],
        "gold": normalize_answer(str(doc["Answer"]), "number") or str(doc["Answer"]),
        "answer_type": "number",
        "rationale": "",
    }


def process_docs(dataset):
    return dataset.map(_row, with_indices=True, remove_columns=dataset.column_names)
