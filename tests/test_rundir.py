"""The run directory guards what it holds: same build resumes, a different one is refused; rows
are written with the schema their row type declares."""

from __future__ import annotations

import json

from tests.assertions import raises_one_line
from toolkit.builders.rows import SFTRow, assistant, schema_of, to_record, user
from toolkit.manifest import Manifest, RowFormat
from toolkit.rundir import MANIFEST, RunDir, data_file, read_manifest


def _manifest(teacher="transformers:smollm2-135m") -> Manifest:
    return Manifest(method="cot", source={"spec": "gym:chain_sum", "kind": "gym", "name": "chain_sum", "split": "train"},
                    teacher=teacher, config={}, command="hubtool build-dataset cot", hubtool_version="0.1.0",
                    row_format=RowFormat(kind="sft", trl="conversational prompt-completion", trainer="sft"))  # fmt: skip


def test_same_build_may_resume_a_different_one_is_refused(tmp_path):
    run = RunDir(tmp_path / "run")
    run.check(_manifest())
    run.start(_manifest())
    assert json.loads((tmp_path / "run" / MANIFEST).read_text())["status"] == "running"
    RunDir(tmp_path / "run").check(_manifest())  # the same command again: fine
    with raises_one_line(match="different build .*teacher"):
        RunDir(tmp_path / "run").check(_manifest("openai:gpt-4o-mini"))
    RunDir(tmp_path / "run").check(_manifest("openai:gpt-4o-mini"), overwrite=True)


def test_foreign_directory_and_file_are_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with raises_one_line(match="not empty"):
        RunDir(tmp_path).check(_manifest())
    with raises_one_line(match="is a file"):
        RunDir(tmp_path / "notes.txt").check(_manifest())


def test_a_manifest_that_is_not_one_is_a_user_error(tmp_path):
    (tmp_path / MANIFEST).write_text('{"method": "cot"}')
    with raises_one_line(match="not a hubtool manifest"):
        read_manifest(tmp_path)
    (tmp_path / MANIFEST).write_text("{nope")
    with raises_one_line(match="corrupt"):
        read_manifest(tmp_path)


def test_a_manifest_of_hubtool_0_1_still_reads(tmp_path):
    old = {"hubtool_version": "0.1.0", "method": "preference", "source": {"spec": "gym:chain_sum"},
           "teacher": "transformers:out/s", "config": {"template": "cot"}, "command": "hubtool ...",
           "row_format": {"kind": "preference", "trl": "conversational preference", "recipe": "recipes/self-refine/dpo-lora.yaml"},
           "teacher_identity": "transformers:out/s@local-1", "prompt_template": "Q: {{ question }}",
           "teacher_info": {"backend": "transformers", "model": "out/s", "revision": "local-1"},
           "usage": {"calls": 3}, "counts": {"pairs": 2}, "pass_rate_histogram": {"0.5": 2}, "status": "complete"}  # fmt: skip
    (tmp_path / MANIFEST).write_text(json.dumps(old))
    m = read_manifest(tmp_path)
    assert m.teacher_identity == "transformers:out/s@local-1" and m.models[0].role == "student"
    assert m.prompt_templates == {"cot": "Q: {{ question }}"} and m.usage == {"teacher": {"calls": 3}}
    assert m.row_format.trainer == "dpo" and m.stats["pass_rate_histogram"] == {"0.5": 2}


def test_finished_run_loads_with_plain_datasets(tmp_path):
    import datasets

    run = RunDir(tmp_path / "run")
    run.start(_manifest())
    row = SFTRow(prompt=user("What is 2+2?"), completion=assistant("2+2=4.\nThe answer is 4."), id="x1",
                 source="gym:chain_sum", question="What is 2+2?", gold="4", pred="4", correct=True,
                 answer_type="number", choices=[], teacher="fake:m", sample_idx=0, finish_reason="stop", num_tokens=7)  # fmt: skip
    writer = run.data_writer(schema_of(SFTRow), to_record)
    writer.add(0, [row])
    run.finish(writer, _manifest(), [])
    assert (data_file(tmp_path / "run")).exists()
    ds = datasets.load_dataset(str(tmp_path / "run"), split="train")
    assert ds[0]["completion"] == [{"role": "assistant", "content": "2+2=4.\nThe answer is 4."}]
    assert ds[0]["pred"] == "4" and ds[0]["num_tokens"] == 7
    empty = RunDir(tmp_path / "empty")
    empty.start(_manifest())
    empty.finish(empty.data_writer(schema_of(SFTRow)), _manifest(), [])
    import pyarrow.parquet as pq

    # a zero-row build still carries the full, typed schema
    assert pq.read_schema(data_file(tmp_path / "empty")) == schema_of(SFTRow)
    assert str(schema_of(SFTRow).field("prompt").type) == "list<item: struct<role: string, content: string>>"


def test_rows_stream_in_problem_order_into_the_same_file_whatever_finishes_first(tmp_path):
    import random

    from toolkit.rundir import DataWriter

    def row(i: int) -> SFTRow:
        return SFTRow(prompt=user(f"q{i}"), completion=assistant(f"a{i}"), id=f"p{i}", source="s", question=f"q{i}",
                      gold="1", pred="1", correct=True, answer_type="number", choices=[], teacher="t",
                      sample_idx=0, finish_reason="stop", num_tokens=1)  # fmt: skip

    files = []
    for seed in (0, 1):
        order = list(range(1200))
        random.Random(seed).shuffle(order)
        writer = DataWriter(tmp_path / f"{seed}.parquet", schema_of(SFTRow), to_record)
        for i in order:
            writer.add(i, [row(i)] * (i % 3))  # 0, 1 or 2 rows per problem
        path, n = writer.close()
        files.append(path.read_bytes())
        assert n == sum(i % 3 for i in range(1200))
    assert files[0] == files[1]  # row groups end at fixed problem indices, not at timing
    import pyarrow.parquet as pq

    ids = pq.read_table(tmp_path / "0.parquet").column("id").to_pylist()
    assert ids == [f"p{i}" for i in range(1200) for _ in range(i % 3)]
