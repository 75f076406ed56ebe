"""reasoning-gym tasks as lm-eval datasets, made on the spot at a fixed seed: no download, so a
full evaluation runs on a machine with no Hub access.

`load` is the tasks' `custom_dataset`; lm-eval calls it with the task's metadata and
`dataset_kwargs` merged, so it takes what it needs and ignores the rest.
"""

from __future__ import annotations

# Answer types of the reasoning-gym tasks hubtool evaluates on; the rest of a task's config is YAML.
ANSWER_TYPES = {
    "gsm_symbolic": "number",
    "basic_arithmetic": "number",
    "chain_sum": "number",
    "leg_counting": "number",
    "syllogism": "yesno",
}


def _gold(answer: str, answer_type: str) -> str:
    answer = str(answer).strip()
    return answer.lower() if answer_type == "yesno" else answer


def rows(gym_task: str, size: int, seed: int) -> list[dict]:
    """`size` problems of one reasoning-gym task in the shared doc shape (see _common/utils.py)."""
    import reasoning_gym

    answer_type = ANSWER_TYPES[gym_task]
    dataset = reasoning_gym.create_dataset(gym_task, size=size, seed=seed)
    return [
        {
            "id": f"gym-{gym_task}-{seed}-{i}",
            "question": entry["question"].strip(),
            "choices": [],
            "gold": _gold(entry["answer"], answer_type),
            "answer_type": answer_type,
            "rationale": str(entry["metadata"].get("answer_cot") or "").strip(),
        }
        for i, entry in enumerate(dataset)
    ]


def load(gym_task: str, size: int, seed: int, **_ignored):
    """A DatasetDict with one `test` split: the evaluation problems."""
    import datasets

    return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows(gym_task, size, seed))})
