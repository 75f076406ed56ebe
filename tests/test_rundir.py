"""The run directory guards what it holds: same build resumes, a different one is refused."""

from __future__ import annotations

import json

import pytest

from toolkit.builders.rows import assistant, sft_schema, user
from toolkit.errors import UserError
from toolkit.rundir import MANIFEST, RunDir, data_file


def _manifest(teacher="transformers:smollm2-135m"):
    from toolkit.builders import ROW_FORMATS

    return {
        "method": "cot",
        "source": {"spec": "gym:chain_sum", "kind": "gym", "name": "chain_sum", "split": "train"},
        "teacher": teacher,
        "row_format": ROW_FORMATS["cot"],
    }


def test_same_build_may_resume_a_different_one_is_refused(tmp_path):
    run = RunDir(tmp_path / "run")
    run.check(_manifest())
    run.start(_manifest())
    assert json.loads((tmp_path / "run" / MANIFEST).read_text())["status"] == "running"
    RunDir(tmp_path / "run").check(_manifest())  # the same command again: fine
    with pytest.raises(UserError, match="different build .*teacher"):
        RunDir(tmp_path / "run").check(_manifest("openai:gpt-4o-mini"))
    RunDir(tmp_path / "run").check(_manifest("openai:gpt-4o-mini"), overwrite=True)


def test_foreign_directory_and_file_are_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="not empty"):
        RunDir(tmp_path).check(_manifest())
    with pytest.raises(UserError, match="is a file"):
        RunDir(tmp_path / "notes.txt").check(_manifest())


def test_finished_run_loads_with_plain_datasets(tmp_path):
    import datasets

    run = RunDir(tmp_path / "run")
    run.start(_manifest())
    row = {
        "prompt": user("What is 2+2?"), "completion": assistant("2+2=4.\nThe answer is 4."), "id": "x1",
        "source": "gym:chain_sum", "question": "What is 2+2?", "gold": "4", "pred": "4", "correct": True,
        "answer_type": "number", "choices": [], "teacher": "fake:m", "sample_idx": 0, "finish_reason": "stop",
        "num_tokens": 7,
    }  # fmt: skip
    run.finish([row], sft_schema(), {**_manifest(), "counts": {"kept": 1}}, [])
    assert (data_file(tmp_path / "run")).exists()
    ds = datasets.load_dataset(str(tmp_path / "run"), split="train")
    assert ds[0]["completion"] == [{"role": "assistant", "content": "2+2=4.\nThe answer is 4."}]
    empty = RunDir(tmp_path / "empty")
    empty.start(_manifest())
    empty.finish([], sft_schema(), _manifest(), [])
    # datasets 5.2 cannot load a zero-row parquet; the file still carries the full schema
    import pyarrow.parquet as pq

    assert pq.read_schema(data_file(tmp_path / "empty")).names[:2] == ["prompt", "completion"]
