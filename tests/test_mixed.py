"""Mixed distillation's builder on fake teachers: the program parser, verdicts, the balance, hostile
programs in the build, honest rows, resuming, the card, the CLI and the preset."""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.assertions import raises_one_line
from toolkit.cli import main
from toolkit.methods.mixed import MixedConfig, prompt_messages
from toolkit.methods.mixed.balance import balance
from toolkit.methods.mixed.programs import as_completion, extract_program, judge_program, program_answer
from toolkit.records import Problem
from toolkit.rundir import read_manifest
from toolkit.sandbox import ExecResult

from .fakes import FakeTeacher, build, rows

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "mixed"
FAST = {"exec_timeout": 1.0}  # timeouts in these tests cost a second each


# --- the program in a reply ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "program"),
    [
        ("```python\nans = 2 + 3\n```", "ans = 2 + 3"),  # clean
        ("Sure! Here it is:\n```python\nx = 4\nans = x * 2\n```\nThis sets ans to 8.", "x = 4\nans = x * 2"),  # prose around
        ("```py\nans = 1\n```", "ans = 1"),
        ("```Python3\nans = 1\n```", "ans = 1"),  # label case and version
        ("``` python\nans = 1\n```", "ans = 1"),  # space after the fence
        ("```\nans = 7\n```", "ans = 7"),  # unlabelled, no python block
        ("```python\ndef f():\n    return 4\n```\nThen:\n```python\nans = f()\n```", "def f():\n    return 4\n\nans = f()"),
        ("```python\nans = 3\n```\nOutput:\n```\n3\n```", "ans = 3"),  # the output block is not code
        ("```python\nans = (\n```\n```python\nans = 5\n```", "ans = 5"),  # the join fails: the last block that runs
        ("```python\n    x = 1\n    ans = x\n```", "x = 1\nans = x"),  # indented inside the fence
        ("```python\nx = 2\nans = x + 1", "x = 2\nans = x + 1"),  # cut off: the fence never closes
        ("ans = 2 + 3", "ans = 2 + 3"),  # bare code
        ("x = 10\ny = x - 4\nans = y", "x = 10\ny = x - 4\nans = y"),
        ("We add them.\nx = 2\nans = x + 3\nSo the answer is 5.", "x = 2\nans = x + 3"),  # bare code inside prose
        ("a, ans = 1, 2", "a, ans = 1, 2"),
        ("```text\nThe answer is 5.\n```", None),  # a fence of another language
        ("The answer is five.", None),  # prose only
        ("I cannot write this program, sorry.", None),
        ("", None),
        ("   \n ", None),
        (None, None),
    ],
)
def test_extract_program(text, program):
    assert extract_program(text) == program


@pytest.mark.parametrize(
    ("text", "program"),
    [  # garbage gives None, never an exception; a program in the same shapes is still found
        ("```", None), ("``````", None), ("```python", None), ("\x00\x01", None), ("def (:\n", None),
        ("```python\n\n```", None), ("ans =" * 500, None), ("(" * 10_000, None), (None, None), ("   \n", None),
        ("```js\nconsole.log(1)\n```", None),  # a fence in another language: no Python program
        ("```python\nans = (\n```", "ans = ("),  # a fenced block is the program as written, compiling or not
        ("ans = 2\n" + "(" * 10_000, "ans = 2"),  # the compiling lines of a bare reply
    ],
)  # fmt: skip
def test_extract_program_never_raises_on_garbage(text, program):
    assert extract_program(text) == program


def test_a_kept_program_is_fenced():
    assert as_completion("ans = 1") == "```python\nans = 1\n```"
    assert extract_program(as_completion("x = 1\nans = x")) == "x = 1\nans = x"


NUMBER = Problem(id="p", source="t", question="What is 3 + 4?", gold="7", answer_type="number")


@pytest.mark.parametrize(
    ("program", "result", "finish", "kind"),
    [
        ("ans = 7", ExecResult("ok", "7"), "stop", "verified"),
        ("ans = 7.0", ExecResult("ok", "7"), "stop", "verified"),
        ("ans = 14 / 2", ExecResult("ok", "7"), "stop", "verified"),
        ("ans = 8", ExecResult("ok", "8"), "stop", "wrong"),
        ("ans = 1/0", ExecResult("exception", error="ZeroDivisionError: division by zero"), "stop", "exception"),
        ("x = 7", ExecResult("no_answer"), "stop", "no_answer"),
        ("while True: pass", ExecResult("timeout"), "stop", "timeout"),
        ("ans = 7", ExecResult("ok", "7"), "length", "truncated"),  # a cut-off reply is never kept
        (None, None, "stop", "no_program"),
        # several candidates are no answer, though the first is gold (issue 21)
        ("ans = [7, 17, 99]", ExecResult("ok", "[7, 17, 99]"), "stop", "no_answer"),
        ("ans = (7, 5)", ExecResult("ok", "(7, 5)"), "stop", "no_answer"),
        ('ans = "7\n5"', ExecResult("ok", "7\n5"), "stop", "no_answer"),
        ("ans = 3 > 2", ExecResult("ok", "True"), "stop", "no_answer"),
        # an escape attempt is never training data, whatever `ans` holds
        ("import os\ntry:\n    os.kill(os.getppid(), 9)\nexcept OSError:\n    pass\nans = 7",
         ExecResult("ok", "7", denied={"signal": 1}), "stop", "escape_signal"),
        ("import socket\ntry:\n    socket.socket()\nexcept OSError:\n    pass\nans = 7",
         ExecResult("ok", "7", denied={"network": 1}), "stop", "escape_network"),
        ("import os\nos.fork()", ExecResult("exception", error="PermissionError", denied={"process": 1}), "stop",
         "escape_process"),
        # chmod on its own file is refused but is no escape
        ("import os\nos.chmod('f', 0o600)\nans = 7", ExecResult("ok", "7", denied={"metadata": 1}), "stop", "verified"),
    ],
)
def test_judge_program(program, result, finish, kind):
    verdict = judge_program(NUMBER, program, result, finish)
    assert verdict.kind == kind and verdict.verified == (kind == "verified")
    if kind in ("verified", "wrong"):
        assert verdict.value == result.value and verdict.outcome == "ok"


@pytest.mark.parametrize(
    ("gold", "value", "kind"),
    [
        ("-4", "-4", "verified"),
        ("-4", "[-4, 17, 99]", "no_answer"),
        ("-4", "(-4, 5)", "no_answer"),
        ("-4", "-4\n5", "no_answer"),
        ("-4", "-4.0000001", "verified"),  # rounded to the gold's 0 decimals
        ("0.33", "0.3333333333333333", "verified"),  # 1/3 at the gold's two decimals
        ("0.33", "1/3", "verified"),
        ("0.33", "0.34", "wrong"),
        ("0.333333", "0.33", "wrong"),  # at the gold's six decimals 0.33 is 0.330000
        ("12.5", "12.45", "verified"),  # half up
        ("12.5", "12.44", "wrong"),
        ("100000000000000000001", "100000000000000000000", "wrong"),  # exact, no float tolerance
        ("3/4", "0.75", "verified"),  # a gold fraction: by value
        ("1,234", "1234", "verified"),
        ("7", "seven", "no_answer"),
    ],
)
def test_a_numeric_ans_is_one_number_compared_at_the_golds_precision(gold, value, kind):
    problem = Problem(id="p", source="t", question="q", gold=gold, answer_type="number")
    assert judge_program(problem, "ans = x", ExecResult("ok", value), "stop").kind == kind


@pytest.mark.parametrize(
    ("result", "answer_type", "answer"),
    [
        (ExecResult("ok", "-4"), "number", "-4"),
        (ExecResult("ok", "[-4, 17, 99]"), "number", None),
        (ExecResult("ok", "-4\n5"), "number", None),
        (ExecResult("ok", "-4", denied={"signal": 1}), "number", None),
        (ExecResult("ok", "-4", denied={"metadata": 1}), "number", "-4"),
        (ExecResult("timeout"), "number", None),
        (ExecResult("ok", "Yes"), "yesno", "yes"),
        (ExecResult("ok", "['yes', 'no']"), "yesno", None),
    ],
)
def test_program_answer_for_scoring_a_students_program(result, answer_type, answer):
    assert program_answer(result, answer_type) == answer


# --- the balance ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class R:
    id: str
    mode: str
    sample_idx: int


def _rows(spec: dict[str, tuple[int, int]]) -> list[R]:
    """{problem: (verified CoT, verified PoT)} -> rows."""
    return [R(pid, m, i) for pid, (c, p) in spec.items() for m, n in (("cot", c), ("pot", p)) for i in range(n)]


def _count(rows) -> dict[str, Counter]:
    out: dict[str, Counter] = {}
    for r in rows:
        out.setdefault(r.id, Counter())[r.mode] += 1
    return out


def test_per_problem_balance_keeps_as_many_of_each_mode():
    kept, report = balance(_rows({"a": (3, 1), "b": (2, 2), "c": (0, 3), "d": (2, 0)}), pot_ratio=0.5)
    counts = _count(kept)
    assert counts["a"] == Counter(cot=1, pot=1)
    assert report.problems == Counter(both=2, cot_only=1, pot_only=1)
    assert report.after_problem == Counter(cot=5, pot=6)  # a 1+1, b 2+2, c 0+3, d 2+0
    assert report.kept["pot"] == report.kept["cot"] == 5  # one PoT row goes overall ...
    assert counts["b"] == Counter(cot=2, pot=1)  # ... from the surplus of the easy problem (solved both ways)
    assert counts["c"]["pot"] == 3  # the problem solved by PoT only keeps its rows
    assert [r.sample_idx for r in kept if r.id == "b" and r.mode == "pot"] == [0]  # the first-sampled row stays


def test_balance_never_deletes_the_only_rows_of_a_problem_solved_in_one_mode():
    """Issue 25: `17 * 23 - 91` was solved by PoT only (both programs verified) and lost both rows to the
    50/50 balance while an easy problem kept 2 CoT + 2 PoT: 4 problems solved, 3 in the data."""
    spec = {"easy": (2, 2), "17 * 23 - 91": (0, 2), "m": (1, 1), "n": (1, 1)}
    kept, report = balance(_rows(spec), pot_ratio=0.5)
    counts = _count(kept)
    assert set(counts) == set(spec) and report.problems_kept == 4
    assert counts["17 * 23 - 91"] == Counter(pot=1)  # trimmed to one row only after the easy surplus
    assert counts["easy"] == Counter(cot=2, pot=1) and counts["m"] == counts["n"] == Counter(cot=1, pot=1)
    assert (report.kept["cot"], report.kept["pot"]) == (4, 4) and not report.target_missed


def test_balance_misses_the_ratio_rather_than_delete_a_problem():
    kept, report = balance(_rows({"a": (1, 0), "b": (0, 1), "c": (0, 1), "d": (0, 1)}), pot_ratio=0.5)
    assert len(kept) == 4 and report.target_missed and report.as_dict(0.5)["pot_ratio"] == 0.75
    kept, report = balance(_rows({"a": (1, 0), "b": (0, 1), "c": (1, 1)}), pot_ratio=0.0)  # CoT only: asked for
    assert _count(kept) == {"a": Counter(cot=1), "c": Counter(cot=1)} and not report.target_missed


def test_max_per_mode_and_require_both():
    spec = {"a": (4, 4), "b": (3, 0), "c": (0, 2)}
    kept, _ = balance(_rows(spec), pot_ratio=0.5, max_per_mode=2)
    assert _count(kept)["a"] == Counter(cot=2, pot=2)
    kept, report = balance(_rows(spec), pot_ratio=0.5, require_both=True)
    assert set(_count(kept)) == {"a"} and report.as_dict(0.5)["dropped_per_problem"] == 5


@pytest.mark.parametrize(("ratio", "cot", "pot", "r"), [(0.5, 6, 6, 1), (0.25, 6, 2, 1), (0.75, 3, 9, 3), (0.0, 6, 0, 0),
                                                   (1.0, 0, 9, 3)])  # fmt: skip
def test_overall_ratio(ratio, cot, pot, r):
    spec = {f"p{i}": (1, 1) for i in range(3)} | {f"q{i}": (1, 2) for i in range(3)} | {"r": (0, 3)}
    kept, report = balance(_rows(spec), pot_ratio=ratio)
    assert (report.kept["cot"], report.kept["pot"]) == (cot, pot)
    assert _count(kept).get("r", Counter())["pot"] == r  # solved by PoT only: it keeps a row unless PoT is off
    assert report.as_dict(ratio)["pot_ratio"] == round(pot / (cot + pot), 4)


def test_a_missing_mode_leaves_the_mix_one_sided():
    kept, report = balance(_rows({"a": (0, 2), "b": (0, 1)}), pot_ratio=0.5)
    assert len(kept) == 3 and report.one_sided


def test_balance_does_not_depend_on_the_order_problems_finished_in():
    rows_ = _rows({f"p{i}": (i % 3, (i * 7) % 4) for i in range(20)})
    kept, _ = balance(rows_, pot_ratio=0.4, seed=3)
    again, _ = balance(list(reversed(rows_)), pot_ratio=0.4, seed=3)
    assert sorted(map(repr, kept)) == sorted(map(repr, again))


# --- prompts ------------------------------------------------------------------------------------
def test_each_mode_prompt_starts_with_its_instruction():
    cot, pot = (prompt_messages(NUMBER, m)[-1]["content"] for m in ("cot", "pot"))
    assert cot.splitlines()[0] == "Answer with a chain of thought (CoT)."
    assert cot.endswith("with the final number in place of the blank:\nThe answer is ___.")
    assert pot.splitlines()[0] == "Answer with a program of thought (PoT)." and "`ans`" in pot and "```python" in pot
    assert NUMBER.question in cot and NUMBER.question in pot
    option = Problem(id="o", source="t", question="Where is milk kept?", gold="B", answer_type="option",
                     choices=("oven", "fridge"))  # fmt: skip
    text = prompt_messages(option, "pot")[-1]["content"]
    assert "(B) fridge" in text and "the final answer, the letter of the correct option, in a variable named `ans`" in text
    assert '"B"' not in text  # issue 21 item 7: no copyable value in the PoT prompt


def test_config_checks():
    base = {"source": "gym:chain_sum"}
    for values, message in [({"cot_samples": 0, "pot_samples": 0}, "both 0"), ({"pot_ratio": 1.5}, "--pot-ratio"),
                            ({"exec_timeout": 0.0}, "--exec-timeout"), ({"max_per_mode": 0}, "--max-per-mode"),
                            ({"exec_memory_mb": 1}, "memory_mb")]:  # fmt: skip
        with raises_one_line(match=message):
            MixedConfig(**base, **values)


# --- builds on a fake teacher --------------------------------------------------------------------
def _source(tmp_path, n=4):
    path = tmp_path / "sums.jsonl"
    path.write_text("".join(json.dumps({"question": f"What is {i} + {i + 5}?", "answer": str(2 * i + 5)}) + "\n" for i in range(n)))
    return f"file:{path}"


def _numbers(request):
    return tuple(map(int, re.findall(r"What is (\d+) \+ (\d+)", request.messages[-1]["content"])[0]))


def _teacher(pot_replies):
    """CoT: sample 0 right (a sloppy ending), 1 wrong, 2 cut off. PoT: pot_replies[j](a, b)."""

    def answer(request, j):
        a, b = _numbers(request)
        if "(PoT)" in request.messages[-1]["content"]:
            reply = pot_replies[j % len(pot_replies)](a, b)
            return reply if not isinstance(reply, tuple) else _completion(*reply)
        cot = [f"{a} plus {b} is {a + b}.\nFinal answer: {a + b}", f"I guess {a + b + 1}.\nThe answer is {a + b + 1}.",
               (f"First, {a} plus", "length")][j % 3]  # fmt: skip
        return cot if isinstance(cot, str) else _completion(*cot)

    return FakeTeacher(answer)


def _completion(text, finish):
    from toolkit.teachers.base import Completion

    return Completion(text, finish, 10, len(text.split()))


GOOD = [
    lambda a, b: f"Here is the program.\n```python\nx = {a}\ny = {b}\nans = x + y\n```\nIt prints nothing.",
    lambda a, b: f"ans = {a} + {b} + 1",  # runs, wrong answer
    lambda a, b: f"```python\nans = {b} + {a}\n```",  # a second correct program
    lambda a, b: f"```python\nans = {b} + {a}\n```",  # the same program again: a duplicate
    lambda a, b: (f"```python\nans = {a} + {b}\n", "length"),  # cut off: never kept
]


def test_build_keeps_verified_rationales_of_both_modes_honestly(tmp_path):
    teacher = _teacher(GOOD)
    manifest = build("mixed", tmp_path / "run", teachers={"teacher": teacher}, source=_source(tmp_path),
                     cot_samples=3, pot_samples=5, **FAST)  # fmt: skip
    kept, c = rows(tmp_path / "run"), manifest.counts
    assert (c["problems"], c["cot_samples"], c["cot_verified"], c["pot_samples"], c["pot_verified"]) == (4, 12, 4, 20, 12)
    assert (c["pot_executed"], c["duplicates"], c["truncated"], c["failed"]) == (16, 4, 8, 0)
    # per problem one CoT (the only verified one) and so one of its two verified programs
    assert c["kept"] == len(kept) == 8 and c["kept_cot"] == c["kept_pot"] == 4 and c["dropped_balance"] == 4
    assert c["solved_problems"] == c["kept_problems"] == 4  # every solved problem is in the data
    by_mode = {m: [r for r in kept if r["mode"] == m] for m in ("cot", "pot")}
    for r in by_mode["cot"]:
        a, b = (int(x) for x in re.findall(r"What is (\d+) \+ (\d+)", r["question"])[0])
        assert r["completion"][0]["content"] == f"{a} plus {b} is {a + b}.\nThe answer is {a + b}."
        assert r["prompt"][0]["content"].startswith("Answer with a chain of thought (CoT).")
        assert r["exec_outcome"] is r["exec_value"] is r["exec_runtime_s"] is None and r["sample_idx"] == 0
    for r in by_mode["pot"]:
        program = extract_program(r["completion"][0]["content"])
        assert r["completion"][0]["content"] == as_completion(program) and "ans = " in program
        assert r["prompt"][0]["content"].startswith("Answer with a program of thought (PoT).")
        assert r["exec_outcome"] == "ok" and r["exec_value"] == r["pred"] == r["gold"] and r["correct"]
        assert r["exec_runtime_s"] >= 0 and r["sample_idx"] == 0
    stats = manifest.stats
    assert stats["verification"]["pot"] == {"samples": 20, "verified": 12, "rate": 0.6}  # a duplicate is verified, kept once
    assert stats["failures"]["pot"]["wrong"] == 4 and stats["failures"]["pot"]["truncated"] == 4
    assert stats["failures"]["cot"] == {"truncated": 4, "no_answer": 0, "contradiction": 0, "no_reasoning": 0, "wrong": 4}
    assert stats["balance"]["kept"] == {"cot": 4, "pot": 4} and stats["sandbox"]["programs_run"] == 16
    assert stats["sandbox"]["isolation"] in ("full", "partial", "minimal")
    assert set(manifest.prompt_templates) == {"mixed_cot", "pot"}
    teacher_prompts = {r.messages[-1]["content"] for r in teacher.calls}  # the rows' prompts are the teacher's
    assert {r["prompt"][-1]["content"] for r in kept} <= teacher_prompts


def test_a_correct_cot_answer_without_reasoning_or_that_contradicts_itself_is_counted_never_kept(tmp_path):
    def answer(request, j):
        a, b = _numbers(request)
        if "(PoT)" in request.messages[-1]["content"]:
            return f"```python\nans = {a} + {b}\n```"
        return [f"The answer is {a + b}.",  # bare: right, but nothing a student could learn a method from
                f"{a} plus {b} is {a + b}.\nThe answer is {a + b}. No wait, the answer is {a + b + 1}.",
                f"{a} plus {b} is {a + b}.\nThe answer is {a + b}."][j]  # fmt: skip

    manifest = build("mixed", tmp_path / "run", teachers={"teacher": FakeTeacher(answer)}, source=_source(tmp_path),
                     cot_samples=3, pot_samples=1, **FAST)  # fmt: skip
    cot = [r for r in rows(tmp_path / "run") if r["mode"] == "cot"]
    assert [r["completion"][0]["content"].split("\n")[0] for r in cot] == [
        "0 plus 5 is 5.", "1 plus 6 is 7.", "2 plus 7 is 9.", "3 plus 8 is 11."]
    assert manifest.counts["cot_verified"] == 4 and manifest.counts["kept_cot"] == 4
    failures = manifest.stats["failures"]["cot"]
    assert (failures["no_reasoning"], failures["contradiction"]) == (4, 4)


HOSTILE = {
    "while True: pass": "timeout",
    "import time\ntime.sleep(30)\nans = 1": "timeout",
    "import os\nwhile True:\n    os.fork()": "escape_process",
    "import subprocess\nans = subprocess.run(['id'], capture_output=True).stdout": "escape_process",
    "x = bytearray(10**10)\nans = 1": "memory",
    "x = []\nwhile True:\n    x.append('y' * 10**6)": "memory",
    "ans = open('/etc/shadow').read()": "exception",
    "import os\nans = open(os.path.expanduser('~/.ssh/id_rsa')).read()": "exception",
    "import os\nans = os.environ.get('HUBTOOL_TEST_SECRET')": "no_answer",  # the secret is not there
    "ans = open('/tmp/hubtool-mixed-pwned', 'w').write('x')": "exception",
    "import socket\nans = socket.create_connection(('127.0.0.1', 9), timeout=1)": "escape_network",
    "import ctypes\nans = ctypes.string_at(0)": "killed",
    "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nans = 1": "escape_signal",
    "import signal\nsignal.signal(signal.SIGXCPU, signal.SIG_IGN)\nwhile True: pass": "timeout",
    "import os\nos._exit(0)": "killed",
    "print('x' * 10**8)\nans = 1": "output_limit",
    "while True: print(1)": "output_limit",
    "ans = 2 ** 100000": "bad_answer",
    "import sys\nsys.setrecursionlimit(10**6)\ndef f(n): return f(n + 1)\nans = f(0)": ("memory", "timeout", "killed"),
    "import resource\nresource.setrlimit(resource.RLIMIT_AS, (-1, -1))\nans = 1": "escape_limits",
    "```python\nans = (\n```": "syntax",
}


def test_hostile_programs_are_contained_reported_by_kind_and_the_build_goes_on(tmp_path, monkeypatch):
    monkeypatch.setenv("HUBTOOL_TEST_SECRET", "s3cret")
    hostile = list(HOSTILE)
    replies = [lambda a, b, p=p: p for p in hostile] + [lambda a, b: f"```python\nans = {a} + {b}\n```"]
    parent = os.getpid()
    manifest = build("mixed", tmp_path / "run", teachers={"teacher": _teacher(replies)}, source=_source(tmp_path, 1),
                     cot_samples=1, pot_samples=len(replies), **FAST)  # fmt: skip
    assert os.getpid() == parent and not Path("/tmp/hubtool-mixed-pwned").exists()
    failures = manifest.stats["failures"]["pot"]
    expected = Counter(kind if isinstance(kind, str) else "recursion" for kind in HOSTILE.values())
    recursion = sum(failures[k] for k in ("memory", "timeout", "killed")) - sum(
        expected[k] for k in ("memory", "timeout", "killed"))  # fmt: skip
    assert recursion == 1, failures
    for kind in ("exception", "no_answer", "output_limit", "bad_answer", "syntax", "escape_process", "escape_network",
                 "escape_signal", "escape_limits"):  # fmt: skip
        assert failures[kind] == expected[kind], (kind, failures)
    assert manifest.counts["pot_verified"] == 1 and manifest.counts["kept_pot"] == 1  # the build went on
    kept = rows(tmp_path / "run")
    assert {r["mode"] for r in kept} == {"cot", "pot"} and all("s3cret" not in json.dumps(r) for r in kept)


ESCAPES = [  # each tries to get out, catches the refusal and answers right: none is training data
    lambda a, b: f"```python\nimport os\ntry:\n    os.kill(os.getppid(), 9)\nexcept OSError:\n    pass\nans = {a} + {b}\n```",
    lambda a, b: f"```python\nimport socket\ntry:\n    socket.socket().connect(('10.0.0.1', 80))\nexcept OSError:\n"
                 f"    pass\nans = {a} + {b}\n```",  # fmt: skip
    lambda a, b: f"```python\nans = {a} + {b}\n```",
]


def test_a_program_that_tried_to_escape_is_dropped_and_counted_by_kind(tmp_path):
    manifest = build("mixed", tmp_path / "run", teachers={"teacher": _teacher(ESCAPES)}, source=_source(tmp_path, 1),
                     cot_samples=1, pot_samples=3, **FAST)  # fmt: skip
    failures = manifest.stats["failures"]["pot"]
    if "seccomp" in manifest.stats["sandbox"]["missing"] or not _kernel_notifies():
        pytest.skip("no seccomp user notification on this machine: refused calls are not seen")
    assert (failures["escape_signal"], failures["escape_network"]) == (1, 1), failures
    assert manifest.counts["pot_verified"] == 1 and manifest.counts["kept_pot"] == 1
    pot = [r for r in rows(tmp_path / "run") if r["mode"] == "pot"]
    assert [r["completion"][0]["content"].count("\n") for r in pot] == [2]  # the plain program, alone


def _kernel_notifies() -> bool:
    try:
        return "user_notif" in Path("/proc/sys/kernel/seccomp/actions_avail").read_text().split()
    except OSError:
        return False


def test_resume_and_card(tmp_path):
    from huggingface_hub import DatasetCard

    kwargs = {"source": _source(tmp_path), "cot_samples": 3, "pot_samples": 5, **FAST}
    first = build("mixed", tmp_path / "run", teachers={"teacher": _teacher(GOOD)}, **kwargs)
    before = rows(tmp_path / "run")
    again = build("mixed", tmp_path / "run", teachers={"teacher": _teacher(GOOD)}, **kwargs)
    assert rows(tmp_path / "run") == before and again.usage["teacher"]["calls"] == 0 and again.counts == first.counts
    card = DatasetCard.load(tmp_path / "run" / "README.md")
    text = card.text
    assert "| PoT | 20 | 12 | 60.0% |" in text and "| CoT | 12 | 4 | 33.3% |" in text
    assert "| **kept (the rows)** | **4** | **4** | **50.0%** |" in text
    assert "isolation **" in text and "mixed_cot" in text and "Mixed Distillation" in text
    assert "hubtool train mixed/smollm2-135m-lora" in text and "program-of-thought" in card.data.tags


def test_cli_build_inspect_push_with_a_scripted_teacher(tmp_path):
    source = tmp_path / "easy.jsonl"
    source.write_text("".join(json.dumps({"question": q, "answer": a}) + "\n" for q, a in
                              [("What is 2 + 3?", "5"), ("What is 10 - 4?", "6"), ("What is 3 * 4?", "12")]))  # fmt: skip
    out = tmp_path / "run"
    runner = CliRunner()
    result = runner.invoke(main, ["build-dataset", "mixed", "--source", f"file:{source}", "--teacher",
                                  f"fake:{FIXTURES / 'teacher.jsonl'}", "--cot-samples", "2", "--pot-samples", "3",
                                  "--exec-timeout", "1", "--out", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "mixed: 3 problems, 15 samples" in result.output
    manifest = read_manifest(out)
    assert manifest.counts["kept_cot"] == manifest.counts["kept_pot"] == 3, manifest.counts
    assert manifest.stats["failures"]["pot"]["exception"] == 1 and manifest.stats["failures"]["pot"]["no_program"] == 1
    assert runner.invoke(main, ["inspect", str(out)]).exit_code == 0
    pushed = runner.invoke(main, ["push", str(out), "test/mixed-easy"])
    assert pushed.exit_code == 0, pushed.output
    from toolkit.hub import load_dataset

    ds = load_dataset("test/mixed-easy", split="train")
    assert sorted(ds["mode"]) == ["cot"] * 3 + ["pot"] * 3 and "exec_value" in ds.column_names


def test_preset_li_emnlp24(tmp_path):
    from toolkit.builders.config import resolve_config
    from toolkit.methods import get_method

    method = get_method("mixed")
    config, preset, values = resolve_config(method.config, flags={"source": "gym:chain_sum", "pot_samples": 2},
                                            preset="li-emnlp24", presets=method.presets)  # fmt: skip
    assert preset == "li-emnlp24" and config.require_both and config.pot_ratio == 0.5
    assert config.pot_samples == 2 and config.cot_samples == values["cot_samples"] == 4  # a flag wins


class _WordTokenizer:
    """A teacher tokenizer for the test: one token per whitespace-separated word."""

    def __call__(self, text, add_special_tokens=False):
        from types import SimpleNamespace

        return SimpleNamespace(input_ids=text.split())


def test_num_tokens_counts_what_the_row_holds_and_the_card_total_matches(tmp_path):
    """Issue 25: a 2-line program was listed with the tokens of the whole reply, prose included."""
    from huggingface_hub import DatasetCard

    teacher = _teacher([GOOD[0]])
    teacher.tokenizer = _WordTokenizer()  # the backend's own tokenizer, as the transformers backend has
    manifest = build("mixed", tmp_path / "run", teachers={"teacher": teacher}, source=_source(tmp_path, 1),
                     cot_samples=1, pot_samples=1, **FAST)  # fmt: skip
    by_mode = {r["mode"]: r for r in rows(tmp_path / "run")}
    assert by_mode["pot"]["completion"][0]["content"] == "```python\nx = 0\ny = 5\nans = x + y\n```"
    assert by_mode["pot"]["num_tokens"] == 13  # the fenced program; the reply had 20 words with its prose
    assert by_mode["cot"]["num_tokens"] == 9  # "0 plus 5 is 5.\nThe answer is 5."
    assert manifest.stats["num_tokens"] == "the teacher's tokenizer"
    card = DatasetCard.load(tmp_path / "run" / "README.md").text
    assert ("The 2 published rows hold 22 completion tokens (`num_tokens`; how they were counted: the teacher's "
            "tokenizer).") in card


def test_num_tokens_without_a_tokenizer_is_the_rows_share_of_the_reply(tmp_path):
    reply = lambda a, b: "Sure, here you go, the program:\n```python\nans = 5\n```"  # noqa: E731
    manifest = build("mixed", tmp_path / "run", teachers={"teacher": _teacher([reply])}, source=_source(tmp_path, 1),
                     cot_samples=0, pot_samples=1, **FAST)  # fmt: skip
    (row,) = rows(tmp_path / "run")
    # 11 words (the fake's token count) x 21 characters of "```python\nans = 5\n```" / 53 of the reply = 4.36
    assert row["num_tokens"] == 4 and manifest.stats["num_tokens"].startswith("estimated")
