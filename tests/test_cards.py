"""Dataset cards: every method's template renders for a real (fake-teacher) build, parses back with
DatasetCard, uses only values the Hub allows, and matches its golden file (regenerate with
UPDATE_GOLDEN=1)."""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

import pytest
from huggingface_hub import DatasetCard

from tests.assertions import raises_one_line
from tests.fakes import build, render_card
from tests.fixtures.runs.builds import built_rows, make_run, pin
from toolkit import cards
from toolkit.methods import get_method, methods
from toolkit.rundir import RunDir, read_manifest

GOLDEN = Path(__file__).parent / "golden"
REPO = "me/smol-arith-cot"


def _edit(run: Path, **changes) -> None:
    manifest = read_manifest(run)
    for key, value in changes.items():
        setattr(manifest, key, value)
    RunDir(run).write_manifest(manifest)


@pytest.mark.parametrize("kind", ["sft", "preference"])
def test_card_renders_and_round_trips_through_dataset_card(tmp_path, kind):
    run = make_run(tmp_path / "run", kind=kind)
    text = render_card(run, repo_id=REPO)
    card = DatasetCard(text)
    manifest = read_manifest(run)
    meta = card.data.to_dict()
    assert meta["configs"] == [{"config_name": "default", "data_files": [{"split": "train", "path": manifest.data_file}]}]
    assert (run / manifest.data_file).is_file()
    assert meta["annotations_creators"] == ["machine-generated"] and meta["source_datasets"] == ["original"]
    assert meta["pretty_name"] == ("Smol Arith Cot: " + ("Instruction-tuning-CoT" if kind == "sft" else "Self-refine "
                                   "Instruction-tuning") + " data from reasoning-gym chain_sum")  # fmt: skip
    assert meta["size_categories"] == ["n<1K"] and meta["language"] == ["en"]
    body = card.text
    assert f"--set dataset_name={REPO}" in body and manifest.row_format.recipe in body
    assert manifest.command in body
    assert "Let's think step by step" in body  # the prompt template itself
    assert "| 0.7 | 0.95 | 256 | 0 | " in body  # sampling parameters
    assert "@inproceedings{ranaldi-freitas-2024" in body
    assert "huggingface_hub | 2.4.0" in body
    assert "Row 1" in body and "The answer is -14282." in body  # the first problem's right answer


@pytest.mark.parametrize("kind", ["sft", "preference"])
def test_card_matches_golden_file(tmp_path, kind):
    run = make_run(tmp_path / "run", kind=kind)
    text = render_card(run, repo_id=REPO)
    golden = GOLDEN / f"card_{kind}.md"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(text)
    assert text == golden.read_text(), f"card changed; if intended, regenerate: UPDATE_GOLDEN=1 pytest {__file__}"


def test_sft_card_reports_the_filter_and_its_effect(tmp_path):
    build("cot", tmp_path / "run", teacher="fake:cycle", source="gym:chain_sum", limit=5, samples=4)
    body = render_card(tmp_path / "run", repo_id=REPO)
    # problems, samples, correct, accuracy, kept, dropped, cut off, no answer, failed, solved
    assert "| 5 | 20 | 5 | 25.0% | 5 | 15 | 5 | 5 | 0 | 5 |" in body
    assert "kept only when it is complete" in body
    assert "hold 114 completion tokens" in body  # the fake's five right answers: 30 + 22 + 18 + 22 + 22 tokens
    build("cot", tmp_path / "all", teacher="fake:cycle", source="gym:chain_sum", limit=5, samples=4, keep="all")
    assert "every sampled rationale is kept" in render_card(tmp_path / "all", repo_id=REPO)


def test_preference_card_reports_pairing_lengths_and_pass_rates(tmp_path):
    run = make_run(tmp_path / "run", kind="preference")
    body = render_card(run, repo_id=REPO)
    assert "chosen 85.6, rejected 60.8" in body  # the mean length in characters of the fixture run's 10 pairs
    assert "| pass rate | 0 | 0.25 | 0.333 | 0.5 | 0.75 | 1 |" in body
    assert "| problems | 0 | 0 | 5 | 0 | 0 | 0 |" in body  # every problem: 1 of its 3 complete samples right
    assert "| 5 | 20 | 5 | 25.0% | 5 | 10 |" in body  # problems, samples, correct, accuracy, cut off, pairs


def test_build_writes_a_card_that_datasets_can_load(tmp_path):
    import datasets

    run = make_run(tmp_path / "run")  # the build calls cards.write_card
    meta = cards.parse_metadata((run / "README.md").read_text())
    assert meta["pretty_name"].startswith("Run: ") and "distillation" in meta["tags"]
    assert "--set dataset_name=run\n" in (run / "README.md").read_text()  # the folder's name, not its path
    assert str(tmp_path) not in (run / "README.md").read_text()
    assert datasets.load_dataset(str(run), split="train").to_list() == built_rows(run)


def test_license_comes_from_source_then_teacher_and_differences_are_said(tmp_path):
    run = make_run(tmp_path / "run")
    manifest = read_manifest(run)
    embedded = dataclasses.replace(manifest.models[0], backend="transformers", model="smollm2-135m")
    _edit(run, source={**manifest.source, "license": "cc-by-sa-4.0"}, models=[embedded])
    text = render_card(run, repo_id=REPO)
    assert DatasetCard(text).data.license == "cc-by-sa-4.0"
    assert "different licenses" in text and "apache-2.0" in text
    assert "embedded copy of [HuggingFaceTB/SmolLM2-135M-Instruct]" in text
    text = render_card(run, repo_id=REPO, license="mit")
    assert DatasetCard(text).data.license == "mit" and "--license mit" in text
    _edit(run, source={**manifest.source, "license": None}, models=[dataclasses.replace(embedded, backend="openai", model="gpt-x")])
    text = render_card(run, repo_id=REPO)
    assert DatasetCard(text).data.license == "unknown"
    assert "check the model's license" in text


def test_merge_keeps_foreign_metadata_and_overwrites_ours(tmp_path):
    run = make_run(tmp_path / "run")
    ours = cards.card_data(read_manifest(run), get_method("cot"), 5, REPO, "apache-2.0")
    existing = ("---\nlicense: mit\ntags: [mine, cot]\npaperswithcode_id: gsm8k\nannotations_creators: [found]\n"
                "dataset_info:\n  splits: []\n---\nold body\n")  # fmt: skip
    merged = cards.merge_metadata(ours, existing).to_dict()
    assert merged["license"] == "apache-2.0" and merged["annotations_creators"] == ["machine-generated"]
    assert merged["tags"] == [*ours.tags, "mine"] and merged["paperswithcode_id"] == "gsm8k"
    assert "dataset_info" not in merged
    assert cards.merge_metadata(ours, None).to_dict() == ours.to_dict()
    with raises_one_line(match="YAML"):
        cards.merge_metadata(ours, "---\nkey: [unclosed\n---\n")


def test_metadata_uses_only_values_the_hub_allows(tmp_path):
    run = make_run(tmp_path / "run")
    data = cards.card_data(read_manifest(run), get_method("cot"), 5, REPO, "apache-2.0")
    allowed = cards.hub_vocabulary()
    assert set(data.task_categories) <= allowed["tasks"] and set(data.size_categories) <= allowed["size"]
    assert "machine-generated" in allowed["creators"] and "en" in allowed["languages"]
    data.task_categories = ["reasoning"]  # not a Hub task category
    with pytest.raises(ValueError, match="task_categories"):
        cards.check_card_data(data)


def test_source_datasets_and_descriptions():
    assert cards.source_datasets({"kind": "hf", "hub_id": "openai/gsm8k", "spec": "hf:gsm8k"}) == ["openai/gsm8k"]
    assert cards.source_datasets({"kind": "gym", "name": "chain_sum", "spec": "gym:chain_sum"}) == ["original"]
    assert cards.source_description({"kind": "gym", "name": "chain_sum", "spec": "gym:chain_sum"}) == "reasoning-gym chain_sum"
    assert cards.source_description({"kind": "file", "name": "data.jsonl", "spec": "file:data.jsonl"}) == "local file data.jsonl"


@pytest.mark.parametrize(("n", "label"), [(0, "n<1K"), (999, "n<1K"), (1000, "1K<n<10K"), (250_000, "100K<n<1M")])
def test_size_categories(n, label):
    assert cards.size_category(n) == label


def test_samples_are_truncated_and_fenced_safely(tmp_path):
    long = "```python\nprint(1)\n```\n" + "step " * 400 + "\nThe answer is 42."
    run = make_run(tmp_path / "run")
    import pyarrow.parquet as pq

    from toolkit.rundir import data_file

    table = pq.read_table(data_file(run))
    rows = table.to_pylist()
    rows[0]["completion"] = [{"role": "assistant", "content": long}]
    pq.write_table(type(table).from_pylist(rows, schema=table.schema), data_file(run))
    text = render_card(run, repo_id=REPO)
    assert "[…]" in text and long not in text
    assert "````\n```python\nprint(1)" in text  # a longer fence around content that holds ``` itself
    DatasetCard(text)  # still parses


def test_a_method_this_hubtool_does_not_know_still_gets_a_card(tmp_path):
    run = make_run(tmp_path / "run")
    _edit(run, method="brand-new")
    text = render_card(run, repo_id=REPO)
    assert "hubtool method `brand-new`" in text and "@inproceedings{ranaldi" not in text


def test_a_broken_card_template_stops_the_build_before_any_call(tmp_path):
    from toolkit.methods import get_method
    from toolkit.teachers.fake import FakeTeacher

    broken = dataclasses.replace(get_method("cot"), card="missing.md.jinja")
    teacher = FakeTeacher(lambda r, j: "The answer is 1.")
    from toolkit.builders.engine import build_dataset

    config = broken.config(source="gym:chain_sum", limit=2, out=str(tmp_path / "run"), cache=str(tmp_path / "c.sqlite"))
    with raises_one_line(match="card template missing.md.jinja"):
        build_dataset(config, method=broken, teachers={"teacher": teacher})
    assert teacher.calls == [] and not (tmp_path / "run").exists()


def test_every_method_has_a_complete_paper_and_a_card_template():
    for method in methods():
        cards.check_card_template(method)
        paper = method.paper
        assert paper and paper.name and paper.url.startswith("https://") and paper.summary, method.name
        assert re.match(r"@\w+\{[\w-]+,", paper.bibtex) and paper.bibtex.count("{") == paper.bibtex.count("}"), method.name


def test_pinning_only_touches_volatile_fields(tmp_path):
    run = make_run(tmp_path / "run")
    before = read_manifest(run)
    after = pin(run)
    assert dataclasses.replace(before, started_at=None, finished_at=None, elapsed_s=None) == dataclasses.replace(
        after, started_at=None, finished_at=None, elapsed_s=None)  # fmt: skip
