"""`gym:TASK` sources: reasoning-gym tasks generated from a fixed seed, in a worker process that
runs with hash randomization off."""

from __future__ import annotations

import atexit
import json
import math
import os
import random
import select
import subprocess
import sys
import threading
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from toolkit.errors import UserError, did_you_mean
from toolkit.records import AnswerType, Problem
from toolkit.sources.base import LoadedSource, SourceInfo, _Where
from toolkit.sources.normalize import parse_number
from toolkit.sources.syllogism_contrast import checked_answer

GYM_BLOCK = 500  # reasoning-gym's default dataset size; see _gym_entries
GYM_WORKER_IDLE_S = 120.0  # see _GymWorker
# Each split draws from its own seed range, so a gym test set is not the train set again.
GYM_SPLIT_OFFSETS = {"train": 0, "validation": 10_000_000, "test": 20_000_000}
# The answer type of the tasks hubtool names (its eval tasks among them) holds for the whole task.
# Any other task's problems are typed one by one (see gym_gold): a number, a yes/no, else a label.
GYM_ANSWER_TYPES: dict[str, AnswerType] = {
    "gsm_symbolic": "number",
    "basic_arithmetic": "number",
    "chain_sum": "number",
    "leg_counting": "number",
    "syllogism": "yesno",
}
# Tasks whose gold hubtool decides itself where reasoning-gym's is wrong: reasoning-gym's syllogism rules
# call undistributed-middle arguments valid, a wrong "Yes" for about 1 in 8 problems (59 of the first 500
# train, 65 of the first 500 test; toolkit/sources/syllogism_contrast.py). Kept, that label would have a
# build keep the teacher's invalid "Yes" and drop its sound "No", and an eval mark a sound student wrong.
# task -> the function that answers one of its questions itself (None: not one it can read)
GYM_CHECKERS = {"syllogism": checked_answer}
GYM_URL = "https://github.com/open-thought/reasoning-gym"
GYM_CITATION = (
    "Stojanovski et al. (2025). REASONING GYM: Reasoning Environments for Reinforcement Learning with "
    "Verifiable Rewards. https://arxiv.org/abs/2505.24760"
)


def _load_gym(spec: str, task: str, split: str, limit: int | None, seed: int) -> LoadedSource:
    if split not in GYM_SPLIT_OFFSETS:
        raise UserError(f"gym sources have no split {split!r}; available: {', '.join(GYM_SPLIT_OFFSETS)}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise UserError(f"seed must be a non-negative integer, got {seed!r}")
    base_seed = seed + GYM_SPLIT_OFFSETS[split]
    made = _GYM_WORKER.generate(task, base_seed, limit or GYM_BLOCK)
    where = _Where(spec, f"gym:{task}", f"seed={seed}", split, limit)
    problems = [_gym_problem(task, base_seed, i, entry, where) for i, entry in enumerate(made["entries"])]
    types = {p.answer_type for p in problems}
    corrected = sum("gold_by" in p.meta for p in problems)
    notes = (
        (f"{corrected} of {len(problems)} problems have the answer of a model check, not reasoning-gym's "
         "(it calls some invalid syllogisms valid); `meta.gym_answer` keeps reasoning-gym's",)
        if corrected else ()
    )  # fmt: skip
    return LoadedSource(
        SourceInfo(
            spec=spec,
            kind="gym",
            name=task,
            hub_id=None,
            config=None,
            split=split,
            revision=None,
            license="apache-2.0",
            answer_type=types.pop() if len(types) == 1 else "label",
            task_category=f"reasoning-gym {made['category']}",
            citation=GYM_CITATION,
            url=GYM_URL,
            notes=notes,
        ),
        problems,
    )


class _GymWorker:
    """Runs reasoning-gym under PYTHONHASHSEED=0, so a task's items are the same in every process.

    Some gym tasks iterate over sets of strings (isomorphic_strings, ransom_note, word_ladder, ...),
    whose order follows the per-process hash seed: generated here, their questions would change from
    run to run, and a resumed build would miss its teacher cache. Unless this process already runs
    with hash randomization off, one child Python does the generating; it serves later loads too,
    and exits after GYM_WORKER_IDLE_S without one, so a long build does not keep it around.
    """

    def __init__(self, idle_s: float = GYM_WORKER_IDLE_S) -> None:
        self.idle_s = idle_s
        self._proc: subprocess.Popen[str] | None = None
        self._lock = threading.Lock()

    def generate(self, task: str, base_seed: int, count: int) -> dict[str, Any]:
        request = {"task": task, "base_seed": base_seed, "count": count}
        if sys.flags.hash_randomization == 0:
            return _gym_generate(**request)
        with self._lock:
            line = self._ask(request) or self._ask(request)  # once more, if it had just idled out
        if not line:
            raise RuntimeError("the reasoning-gym worker process died; its error is on stderr above")
        reply = json.loads(line)
        if "error" in reply:
            raise UserError(reply["error"])
        if "bug" in reply:
            raise RuntimeError(f"reasoning-gym failed in the worker process:\n{reply['bug']}")
        return reply["ok"]

    def _ask(self, request: dict[str, Any]) -> str:
        proc = self._start()
        try:
            proc.stdin.write(json.dumps(request) + "\n")  # type: ignore[union-attr]
            proc.stdin.flush()  # type: ignore[union-attr]
            line = proc.stdout.readline()  # type: ignore[union-attr]
        except BrokenPipeError:
            line = ""
        if not line:
            # It idled out (or died) as we asked: reap it, so the retry starts a fresh one instead of
            # writing to a process that has closed its pipes but not yet exited.
            proc.kill()
            proc.wait()
            self._proc = None
        return line

    def _start(self) -> subprocess.Popen[str]:
        if self._proc is None or self._proc.poll() is not None:
            root = str(Path(__file__).resolve().parents[2])  # the child imports this very toolkit
            path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
            self._proc = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    f"from toolkit.sources.gym import _gym_serve; _gym_serve({self.idle_s!r})",
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                encoding="utf-8",
                env={**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": path},
            )
            atexit.register(self._stop, self._proc)
        return self._proc

    @staticmethod
    def _stop(proc: subprocess.Popen[str]) -> None:
        if proc.poll() is None and proc.stdin is not None:
            proc.stdin.close()  # the worker's read loop ends and it exits
            proc.wait(timeout=10)


_GYM_WORKER = _GymWorker()


def _gym_serve(idle_s: float) -> None:
    """The worker's main loop: one JSON request per stdin line, one JSON reply per stdout line."""
    replies, sys.stdout = sys.stdout, sys.stderr  # a task that prints must not corrupt the replies
    while select.select([sys.stdin], [], [], idle_s)[0]:
        line = sys.stdin.readline()
        if not line:
            return
        try:
            reply = {"ok": _gym_generate(**json.loads(line))}
        except UserError as e:
            reply = {"error": str(e)}
        except Exception:  # a bug: its traceback travels back to the parent
            reply = {"bug": traceback.format_exc()}
        replies.write(json.dumps(reply) + "\n")
        replies.flush()


def _gym_generate(task: str, base_seed: int, count: int) -> dict[str, Any]:
    """Entries 0..count-1 of a task as JSON-ready dicts, plus the task's category."""
    import reasoning_gym  # reasoning-gym imports slowly (sympy and more): only in the gym worker
    from reasoning_gym.factory import DATASETS

    if task not in DATASETS:
        known = ", ".join(sorted(DATASETS))
        raise UserError(
            f"unknown reasoning-gym task {task!r}{did_you_mean(task, list(DATASETS))}; known: {known}"
        )
    entries = [
        {
            "question": str(e["question"]),
            "answer": None if e.get("answer") is None else str(e["answer"]),
            "metadata": _jsonable(e.get("metadata") or {}),
        }
        for e in _gym_entries(reasoning_gym, task, base_seed, count)
    ]
    category = DATASETS[task][0].__module__.split(".")[1]  # reasoning_gym.<category>.<module>
    return {"category": category, "entries": entries}


def _gym_entries(reasoning_gym: Any, task: str, base_seed: int, count: int) -> Iterator[Mapping[str, Any]]:
    """Entries 0..count-1, each independent of `count`.

    reasoning-gym does not promise that: some tasks build their items up front from the dataset
    size (acre), and some draw from the global `random` (list_functions). So items come from
    fixed-size blocks seeded `base_seed + block * GYM_BLOCK` (for the usual Random(seed + idx) tasks
    that is exactly gym's own item), each made with the global `random` seeded per item.
    """
    dataset, block = None, -1
    for index in range(count):
        b, offset = divmod(index, GYM_BLOCK)
        if b != block:
            block, block_seed = b, base_seed + b * GYM_BLOCK
            with _seeded_global_random(f"{task}:{block_seed}"):
                dataset = _create_gym(reasoning_gym, task, block_seed)
        with _seeded_global_random(f"{task}:{base_seed}:{index}"):
            yield dataset[offset]  # type: ignore[index]


def _create_gym(reasoning_gym: Any, task: str, seed: int) -> Any:
    try:
        return reasoning_gym.create_dataset(task, seed=seed, size=GYM_BLOCK)
    except (AssertionError, TypeError, ValueError) as e:
        raise UserError(
            f"reasoning-gym can't build {task!r} with its default settings ({e}); pick another task"
        ) from None


@contextmanager
def _seeded_global_random(key: str) -> Iterator[None]:
    state = random.getstate()
    random.seed(key)  # str seeds hash with sha512: the same in every process
    try:
        yield
    finally:
        random.setstate(state)


def _gym_problem(task: str, base_seed: int, index: int, entry: Mapping[str, Any], where: _Where) -> Problem:
    answer = entry.get("answer")
    if answer is None or not str(answer).strip():
        raise UserError(
            f"gym task {task!r} has no single gold answer (reasoning-gym checks it with a "
            "verifier); pick a task with a fixed answer"
        )
    raw = str(answer)
    answer_type, gold = gym_gold(task, raw)
    meta = {
        "index": index,
        "gym_task": task,
        "gym_seed": base_seed,  # the split's seed; for most tasks the item is create_dataset(task, seed=...)[index]
        "gym_answer": raw,
        "gym_metadata": entry["metadata"],
    }
    checked = GYM_CHECKERS[task](entry["question"]) if task in GYM_CHECKERS else None
    if checked is not None and checked != gold:
        meta["gold_by"] = f"model check ({GYM_CHECKERS[task].__module__})"
        gold = checked
    return Problem(
        id=where.id(index),
        source=where.source,
        question=entry["question"],
        gold=gold,
        answer_type=answer_type,
        meta=meta,
        index=index,
    )


def gym_gold(task: str, answer: str) -> tuple[AnswerType, str]:
    """The answer type and canonical gold of one gym answer: the one place gym problems are typed.

    A task in GYM_ANSWER_TYPES always has that type; any other answer is a number when it parses as
    one, a yes/no when it is literally "yes" or "no" (any case; "true" can be a label's text), else
    a label.
    """
    text = answer.strip()
    number = parse_number(text)
    yesno = text.lower() if text.lower() in ("yes", "no") else None
    golds: dict[AnswerType, str | None] = {"number": number, "yesno": yesno, "label": text}
    kind = GYM_ANSWER_TYPES.get(task) or ("number" if number is not None else "yesno" if yesno else "label")
    gold = golds[kind]
    if gold is None:
        raise UserError(
            f"reasoning-gym task {task!r} gave the answer {answer!r}, which is not a {kind} as hubtool "
            "expects of this task; this reasoning-gym version changed the task, please report it"
        )
    return kind, gold


_DROP = object()


def _jsonable(value: Any) -> Any:
    """The JSON-serialisable part of gym metadata: what json.dumps cannot write is dropped."""
    if isinstance(value, Mapping):
        out = {str(k): _jsonable(v) for k, v in value.items() if isinstance(k, str | int | float | bool)}
        return {k: v for k, v in out.items() if v is not _DROP}
    if isinstance(value, list | tuple):
        items = [_jsonable(v) for v in value]
        return _DROP if any(v is _DROP for v in items) else items
    if isinstance(value, float):
        return value if math.isfinite(value) else _DROP
    return value if value is None or isinstance(value, bool | int | str) else _DROP
