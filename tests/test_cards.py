"""Dataset cards: every template renders for a fixture build, parses back with DatasetCard, and
matches its golden file (regenerate with UPDATE_GOLDEN=1)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from huggingface_hub import DatasetCard

from tests.fixtures.runs.builds import make_run, sft_rows
from toolkit import cards
from toolkit.errors import UserError
from toolkit.rundir import MANIFEST

GOLDEN = Path(__file__).parent / "golden"
REPO = "me/smol-arith-cot"


def _set_manifest(run: Path, **changes) -> None:
    manifest = json.loads((run / MANIFEST).read_text())
    manifest.update(changes)
    (run / MANIFEST).write_text(json.dumps(manifest))


@pytest.mark.parametrize("kind", cards.card_kinds())
def test_every_template_renders_and_round_trips_through_dataset_card(tmp_path, kind):
    run = make_run(tmp_path / "run", kind=kind)
    text = cards.render_card(run, repo_id=REPO)
    card = DatasetCard(text)
    manifest = json.loads((run / MANIFEST).read_text())
    n_rows = 5 if kind == "sft" else 3
    expected = cards.card_metadata(manifest, n_rows, REPO, "apache-2.0")
    assert card.data.to_dict() == expected
    assert card.data.configs == [
        {"config_name": "default", "data_files": [{"split": "train", "path": manifest["data_file"]}]}
    ]
    assert (run / manifest["data_file"]).is_file()
    body = card.text
    assert f"--set dataset_name={REPO}" in body and manifest["row_format"]["recipe"] in body
    assert manifest["command"] in body
    assert "Let's think step by step" in body  # the prompt template itself
    assert "| 0.7 | 0.95 | 256 | 0 | 2 |" in body  # sampling parameters
    assert "@inproceedings{ranaldi-freitas-2024" in body
    assert "huggingface_hub | 2.4.0" in body
    assert "Row 1" in body and "The answer is 42." in body
    assert ("SmolLM2-135M-Instruct" in body) == (kind == "sft")  # the embedded teacher's origin


@pytest.mark.parametrize("kind", ["sft", "preference"])
def test_card_matches_golden_file(tmp_path, kind):
    run = make_run(tmp_path / "run", kind=kind)
    text = cards.render_card(run, repo_id=REPO)
    golden = GOLDEN / f"card_{kind}.md"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(text)
    assert text == golden.read_text(), (
        f"card changed; if intended, regenerate: UPDATE_GOLDEN=1 pytest {__file__}"
    )


def test_sft_card_reports_the_filter_and_its_effect(tmp_path):
    run = make_run(tmp_path / "run")
    body = cards.render_card(run, repo_id=REPO)
    # problems, samples, correct, accuracy, kept, dropped (samples - kept), failed, solved
    assert "| 5 | 10 | 7 | 70.0% | 5 | 5 | 0 | 5 |" in body
    assert "kept only when its final answer" in body
    assert "110 completion tokens" in body  # sum of num_tokens over the published rows
    _set_manifest(run, config={**json.loads((run / MANIFEST).read_text())["config"], "keep": "all"})
    assert "every sampled rationale is kept" in cards.render_card(run, repo_id=REPO)


def test_build_writes_a_card_that_datasets_can_load(tmp_path):
    import datasets

    run = make_run(tmp_path / "run")  # RunDir.finish calls cards.write_card
    meta = cards.parse_metadata((run / "README.md").read_text())
    assert meta["pretty_name"] == "run" and "distillation" in meta["tags"]
    assert "--set dataset_name=" + str(run) in (run / "README.md").read_text()
    ds = datasets.load_dataset(str(run), split="train")
    assert ds.to_list() == sft_rows()


def test_license_comes_from_source_then_teacher_and_differences_are_said(tmp_path):
    run = make_run(tmp_path / "run")
    source = json.loads((run / MANIFEST).read_text())["source"]
    _set_manifest(run, source={**source, "license": "cc-by-sa-4.0"})
    text = cards.render_card(run, repo_id=REPO)
    assert DatasetCard(text).data.license == "cc-by-sa-4.0"
    assert "different licenses" in text and "apache-2.0" in text
    text = cards.render_card(run, repo_id=REPO, license="mit")
    assert DatasetCard(text).data.license == "mit" and "--license mit" in text
    _set_manifest(
        run, source={**source, "license": None}, teacher_info={"backend": "openai", "model": "gpt-x"}
    )
    text = cards.render_card(run, repo_id=REPO)
    assert DatasetCard(text).data.license == "unknown"
    assert "check the model's license" in text


def test_merge_keeps_foreign_metadata_and_overwrites_ours():
    ours = {"license": "apache-2.0", "tags": ["hubtool", "cot"], "configs": [{"config_name": "default"}]}
    existing = "---\nlicense: mit\ntags: [mine, cot]\nannotations_creators: [machine-generated]\ndataset_info:\n  splits: []\n---\nold body\n"
    merged = cards.merge_metadata(ours, existing)
    assert merged == {"license": "apache-2.0", "tags": ["hubtool", "cot", "mine"], "configs": [{"config_name": "default"}],
                      "annotations_creators": ["machine-generated"]}  # fmt: skip
    assert cards.merge_metadata(ours, None) == ours
    with pytest.raises(UserError, match="YAML"):
        cards.merge_metadata(ours, "---\nkey: [unclosed\n---\n")


def test_source_datasets_name_the_hub_id_or_describe_the_source():
    assert (
        cards.source_description({"kind": "hf", "hub_id": "openai/gsm8k", "spec": "hf:gsm8k"})
        == "openai/gsm8k"
    )
    assert "procedurally generated" in cards.source_description(
        {"kind": "gym", "name": "chain_sum", "spec": "gym:chain_sum"}
    )
    assert (
        cards.source_description({"kind": "file", "name": "data.jsonl", "spec": "file:data.jsonl"})
        == "local file data.jsonl"
    )


@pytest.mark.parametrize(
    ("n", "label"), [(0, "n<1K"), (999, "n<1K"), (1000, "1K<n<10K"), (250_000, "100K<n<1M")]
)
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
    text = cards.render_card(run, repo_id=REPO)
    assert "[…]" in text and long not in text
    assert "````\n```python\nprint(1)" in text  # a longer fence around content that holds ``` itself
    DatasetCard(text)  # still parses


def test_unknown_method_and_kind(tmp_path):
    run = make_run(tmp_path / "run")
    _set_manifest(run, method="brand-new")
    text = cards.render_card(run, repo_id=REPO)
    assert "hubtool method `brand-new`" in text and "No citation recorded" in text
    _set_manifest(run, row_format={"kind": "nope"})
    with pytest.raises(UserError, match="no card template for dataset kind 'nope'"):
        cards.render_card(run, repo_id=REPO)


def test_methods_file_entries_are_complete():
    for name, info in cards.methods().items():
        assert {"name", "paper", "url", "summary", "tags", "bibtex"} <= info.keys(), name
        bib = info["bibtex"]
        assert re.match(r"@\w+\{[\w-]+,", bib) and bib.count("{") == bib.count("}"), name
