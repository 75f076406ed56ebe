"""Experiments: a declared chain runs once, skips what did not change, re-runs exactly what depends on
a change, picks up after a failure, and reports every number with an interval and its provenance."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from tests.assertions import raises_one_line
from toolkit.cli import main
from toolkit.experiments import load_experiment, run_experiment
from toolkit.experiments.report import bootstrap, mcnemar, summarize

ROOT = Path(__file__).resolve().parents[1]

# build -> push -> build from the pushed dataset (a fake student) -> push: real steps, seconds to run
CHAIN = {
    "name": "chain",
    "decontaminate": False,
    "steps": {
        "cot": {"build": "cot", "with": {"source": "gym:chain_sum", "limit": 3, "samples": 2, "teacher": "fake:right"}},
        "cot-data": {"push": "cot", "name": "exp/chain-cot"},
        "pref": {"build": "preference", "with": {"student": "fake:cycle", "from_dataset": "{cot-data}", "samples": 4}},
        "pref-data": {"push": "pref", "name": "exp/chain-pref"},
    },
}  # fmt: skip


def _write(tmp_path: Path, spec: dict, name: str = "exp.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def _run(path: Path, work: Path, **kw):
    lines: list[str] = []
    plan = run_experiment(path, workdir=work, echo=lines.append, **kw)
    return plan, lines


def test_a_chain_runs_then_skips_then_reruns_exactly_what_changed(tmp_path):
    path, work = _write(tmp_path, CHAIN), tmp_path / "work"
    first, _ = _run(path, work)
    assert first.actions == dict.fromkeys(CHAIN["steps"], "run")
    assert first.outputs["cot-data"] == "exp/chain-cot" and Path(first.outputs["pref"], "manifest.json").is_file()
    again, lines = _run(path, work)
    assert again.actions == dict.fromkeys(CHAIN["steps"], "skip") and all("skipped" in line for line in lines[:4])

    changed = json.loads(json.dumps(CHAIN))
    changed["steps"]["pref"]["with"]["samples"] = 2  # only the preference build and what reads it
    plan, _ = _run(_write(tmp_path, changed), work)
    assert plan.actions == {"cot": "skip", "cot-data": "skip", "pref": "run", "pref-data": "run"}

    changed["steps"]["cot"]["with"]["limit"] = 4  # the first build: everything downstream
    dry, _ = _run(_write(tmp_path, changed), work, dry_run=True)
    assert dry.actions == {"cot": "run", "cot-data": "run if its inputs change", "pref": "run if its inputs change",
                           "pref-data": "run if its inputs change"}  # fmt: skip
    plan, _ = _run(_write(tmp_path, changed), work)
    assert plan.actions == dict.fromkeys(CHAIN["steps"], "run")


def test_a_failed_step_is_where_the_next_run_starts(tmp_path):
    broken = json.loads(json.dumps(CHAIN))
    broken["steps"]["pref"]["with"]["from_dataset"] = "exp/never-pushed"  # found missing only when it runs
    work = tmp_path / "work"
    with raises_one_line(match="exp/never-pushed"):
        _run(_write(tmp_path, broken), work)
    state = json.loads((work / "state.json").read_text())
    assert set(state) == {"cot", "cot-data"}  # what finished is recorded
    plan, _ = _run(_write(tmp_path, CHAIN), work)
    assert plan.actions == {"cot": "skip", "cot-data": "skip", "pref": "run", "pref-data": "run"}


def test_the_results_folder_holds_what_finished_even_when_a_later_step_fails(tmp_path):
    broken = json.loads(json.dumps(CHAIN))
    broken["steps"]["pref"]["with"]["from_dataset"] = "exp/never-pushed"
    results = tmp_path / "results"
    results.mkdir()
    (results / "README.md").write_text("what it shows: mine\n")
    with raises_one_line(match="exp/never-pushed"):
        _run(_write(tmp_path, broken), tmp_path / "work", results=results)
    files = {str(p.relative_to(results)) for p in results.rglob("*") if p.is_file()}
    assert files == {"README.md", "report.md", "results.json", "records/build-cot.json", "records/state.json",
                     "cards/dataset-chain-cot.md"}  # fmt: skip
    assert json.loads((results / "records" / "build-cot.json").read_text())["counts"]["problems"] == 3
    assert set(json.loads((results / "records" / "state.json").read_text())) == {"cot", "cot-data"}
    assert "exp/chain-cot" in (results / "cards" / "dataset-chain-cot.md").read_text()
    _run(_write(tmp_path, CHAIN), tmp_path / "work", results=results)
    files = {str(p.relative_to(results)) for p in results.rglob("*") if p.is_file()}
    assert {"records/build-pref.json", "cards/dataset-chain-pref.md"} <= files
    assert (results / "README.md").read_text() == "what it shows: mine\n"  # the experimenter's, left alone
    for path in results.rglob("*"):
        if path.is_file():
            assert str(tmp_path) not in path.read_text(), path  # no path of this machine


def test_rerun_runs_a_fresh_step_again_and_only_what_its_new_output_changes(tmp_path):
    path, work = _write(tmp_path, CHAIN), tmp_path / "work"
    _run(path, work)
    before = json.loads((work / "state.json").read_text())
    dry, _ = _run(path, work, dry_run=True, rerun=["cot-data"])
    assert dry.actions == {"cot": "skip", "cot-data": "run", "pref": "run if its inputs change",
                           "pref-data": "run if its inputs change"}  # fmt: skip
    # the same rows pushed again: the dataset's fingerprint is unchanged, so the preference build is not re-run
    plan, lines = _run(path, work, rerun=["cot-data"])
    assert plan.actions == {"cot": "skip", "cot-data": "run", "pref": "skip", "pref-data": "skip"}
    assert "[cot-data] push: running" in lines[1]
    assert json.loads((work / "state.json").read_text())["cot-data"] == before["cot-data"]
    with raises_one_line(match=r"--rerun cot-dta: no such step .*did you mean 'cot-data'"):
        _run(path, work, rerun=["cot-dta"])
    result = CliRunner().invoke(main, ["run", str(path), "--workdir", str(work), "--rerun", "pref-data"])
    assert result.exit_code == 0, result.output
    assert "[pref-data] push: running" in result.output and "[pref] build: up to date" in result.output


def test_a_deleted_output_runs_its_step_again(tmp_path):
    path, work = _write(tmp_path, CHAIN), tmp_path / "work"
    _run(path, work)
    shutil.rmtree(work / "builds" / "pref")
    plan, _ = _run(path, work)
    assert plan.actions["pref"] == "run" and plan.actions["cot"] == "skip"


GYM = {"source": "gym:chain_sum"}


@pytest.mark.parametrize(
    ("steps", "message"),
    [  # each file has one fault (a file with several lists them, one line each: test_experiments_hostile)
        ({"a": {"build": "cot", "push": "x"}}, "exactly one of"),
        ({"a": {"bake": "cot"}}, "exactly one of"),
        ({"a": {"push": "nothing", "name": "me/x"}}, "not an earlier build step"),
        ({"a": {"build": "cot", "with": {"source": "{later}"}}, "later": {"build": "cot", "with": GYM}}, "not an earlier step"),
        ({"a": {"build": "cot", "with": GYM, "wiht": {}}}, "did you mean 'with'"),
        ({"a": {"train": "cot/smollm2-135m-lora-smoke"}}, "needs `dataset:`"),
        ({"a": {"eval": {}, "tasks": ["gym_chain_sum"]}}, "maps report labels"),
        ({"a": {"eval": {"../x": "smollm2-135m"}, "tasks": ["gym_chain_sum"]}}, r"label '\.\./x' is not a name"),
    ],
)
def test_bad_experiment_files_are_one_line_errors(tmp_path, steps, message):
    with raises_one_line(match=message):
        load_experiment(_write(tmp_path, {"name": "x", "steps": steps}))


def test_the_shipped_experiments_load_and_every_recipe_and_method_they_name_exists():
    from toolkit.experiments.check import check_experiment
    from toolkit.experiments.runner import recipe_path
    from toolkit.methods import get_method

    files = sorted((ROOT / "experiments").glob("*.yaml"))
    assert {"cpu-smoke.yaml", "cpu-effect.yaml"} <= {f.name for f in files}
    for f in files:
        experiment = load_experiment(f)
        problems: list[str] = []
        check_experiment(experiment, problems)  # what `--dry-run` checks: each value as the run will make it
        assert not problems, (f.name, problems)
        for step in experiment.steps:
            if step.kind == "build":
                method = get_method(step.spec["build"])
                assert set(step.spec.get("with") or {}) <= {x.name for x in __import__("dataclasses").fields(method.config)}, f
                assert step.spec.get("preset") in (None, *method.presets), f
            if step.kind == "train":
                assert recipe_path(step.spec["train"]).is_file(), f


# --- statistics -------------------------------------------------------------------------------------


def test_bootstrap_and_mcnemar_on_known_data():
    assert bootstrap([[1.0] * 10]) == (1.0, 1.0, 1.0)
    point, low, high = bootstrap([[1.0, 0.0] * 50])
    assert point == 0.5 and 0.39 < low < 0.45 and 0.55 < high < 0.61  # ~ +-1.96 * sqrt(.25 / 100)
    point, low, high = bootstrap([[1.0] * 4, [0.0] * 4])  # the mean of two task means
    assert (point, low, high) == (0.5, 0.5, 0.5)
    assert mcnemar([1, 1, 1, 1, 1, 0], [0, 0, 0, 0, 0, 0]) == pytest.approx(0.0625)  # 5 vs 0 discordant
    assert mcnemar([1, 0], [1, 0]) == 1.0
    assert mcnemar([1, 0, 1, 0], [0, 1, 0, 1]) == 1.0


def test_summary_pairs_models_on_the_same_documents():
    base = {"t1": {"strict-match": {0: 0.0, 1: 0.0, 2: 1.0, 3: 0.0}}, "t2": {"strict-match": {0: 1.0, 1: 0.0}}}
    better = {"t1": {"strict-match": {0: 1.0, 1: 1.0, 2: 1.0, 3: 0.0}}, "t2": {"strict-match": {0: 1.0, 1: 0.0}}}
    summary = summarize({"base": base, "sft": better}, ["t1", "t2"], {"t1"}, "base")
    sft = summary["models"]["sft"]["strict-match"]
    assert sft["score"]["t1"]["mean"] == 0.75 and sft["score"]["ID avg"]["mean"] == 0.75
    assert sft["vs_baseline"]["t1"]["mean"] == 0.5 and sft["vs_baseline"]["OOD avg"]["mean"] == 0.0
    assert sft["vs_baseline"]["t1"]["p_mcnemar"] == 0.5  # 2 discordant pairs, both for sft
    assert summary["documents"] == {"t1": 4, "t2": 2}


def test_a_contrast_set_scores_consistency_over_groups_and_stays_out_of_the_averages():
    # t1 in-domain; c a contrast set of three pairs, the third cut by --limit (doc 5 is missing)
    groups = {"c": {0: ("g1", 2), 1: ("g1", 2), 2: ("g2", 2), 3: ("g2", 2), 4: ("g3", 2)}}
    base = {"t1": {"strict-match": {0: 1.0, 1: 0.0}}, "c": {"strict-match": {0: 1.0, 1: 1.0, 2: 1.0, 3: 0.0, 4: 1.0}}}
    cf = {"t1": {"strict-match": {0: 1.0, 1: 1.0}}, "c": {"strict-match": {0: 1.0, 1: 1.0, 2: 1.0, 3: 1.0, 4: 0.0}}}
    summary = summarize({"base": base, "cf": cf}, ["t1", "c"], {"t1"}, "base", contrast=groups)
    model = summary["models"]["cf"]["strict-match"]
    assert summary["contrast"] == ["c"] and "OOD avg" not in model["score"]  # c is in neither average
    assert model["score"]["ID avg"]["mean"] == 1.0 and model["score"]["c"]["mean"] == 0.8
    assert summary["models"]["base"]["strict-match"]["score"]["c consistency"]["mean"] == 0.5  # g1 whole, g2 not
    assert model["score"]["c consistency"]["mean"] == 1.0 and model["score"]["c consistency"]["n"] == 2
    assert model["vs_baseline"]["c consistency"]["mean"] == 0.5
    assert model["vs_baseline"]["c consistency"]["p_mcnemar"] == 1.0  # one discordant group


def test_the_report_reads_contrast_groups_from_lm_evals_samples():
    from toolkit.experiments.report import _markdown, read_all

    labels = ["without-counterfactuals", "counterfactual"]
    scores, unanswered, groups = read_all(ROOT / "tests" / "fixtures" / "lm_eval_samples_contrast", labels)
    task = "hubtool_cf_gym_syllogism_contrast"
    g = {doc: group for doc, (group, _) in groups[task].items()}
    assert g[0] == g[1] != g[2] == g[3] != g[4] != g[0] and {n for _, n in groups[task].values()} == {2}
    summary = summarize(scores, [task], set(), labels[0], unanswered, groups)
    flexible = summary["models"]["counterfactual"]["flexible-extract"]
    # the fixture's README: flexible 1 1 | 0 0 | 1 (cut) against 1 0 | 0 1 | 0: pair one whole only without
    assert summary["models"][labels[0]]["flexible-extract"]["score"][task + " consistency"]["mean"] == 0.5
    assert flexible["score"][task + " consistency"]["mean"] == 0.0 and flexible["score"][task]["mean"] == 0.4
    assert flexible["vs_baseline"][task + " consistency"]["mean"] == -0.5
    summary |= {"provenance": {}, "eval_config": {"max_gen_toks": 384, "notes": []}}
    text = "\n".join(_markdown("eval", summary, "strict-match"))
    assert "| model | cf_gym_syllogism_contrast (contrast) | cf_gym_syllogism_contrast consistency |" in text
    assert "| counterfactual | 20.0 [" in text and "OOD avg" not in text


def test_the_report_counts_documents_whose_answer_was_never_read():
    """A student whose reasoning runs past the token cap loses those documents without answering wrong:
    the report says how many, and its accuracy on the ones it answered (lm-eval's own sample files)."""
    from toolkit.experiments.report import _markdown, read_samples

    scores, unanswered = read_samples(ROOT / "tests" / "fixtures" / "lm_eval_samples", ["sft", "sft-512"])
    # at 160 tokens doc 0 was cut (not looping yet); 1 and 13 answered. At 512: 0 and 2 loop to the cap,
    # 9 and 15 stop without an answer line
    assert unanswered == {"sft": {"hubtool_gym_syllogism": {0: False}},
                          "sft-512": {"hubtool_gym_syllogism": {0: True, 2: True, 9: False, 15: False}}}  # fmt: skip
    summary = summarize(scores, ["hubtool_gym_syllogism"], set(), "sft", unanswered)
    cell = summary["unanswered"]["sft"]["hubtool_gym_syllogism"]
    assert cell == {"n": 3, "unanswered": 1, "looping": 0, "answered_accuracy": 0.5}  # doc 1 right, doc 13 wrong
    cell = summary["unanswered"]["sft-512"]["hubtool_gym_syllogism"]
    assert cell == {"n": 6, "unanswered": 4, "looping": 2, "answered_accuracy": 0.5}
    summary |= {"provenance": {}, "eval_config": {"max_gen_toks": 160, "notes": []}}
    text = "\n".join(_markdown("eval", summary, "strict-match"))
    assert "cut at 160 tokens" in text and "| sft | 1 of 3 (50.0) |" in text
    assert "| sft-512 | 4 of 6, 2 looping (50.0) |" in text


@pytest.mark.slow
def test_cpu_smoke_runs_end_to_end_skips_and_reruns_only_the_eval(tmp_path, monkeypatch):
    work = tmp_path / "work"
    results = tmp_path / "results"
    result = CliRunner().invoke(main, ["run", str(ROOT / "experiments" / "cpu-smoke.yaml"), "--workdir", str(work),
                                       "--results", str(results)])  # fmt: skip
    assert result.exit_code == 0, result.output
    report = (work / "report" / "report.md").read_text()
    assert (results / "report.md").read_text() == report and (results / "eval.png").is_file()
    assert {p.name for p in (results / "cards").iterdir()} == {"dataset-cpu-smoke-cot.md", "dataset-cpu-smoke-pref.md",
                                                               "model-sft.md", "model-dpo.md"}  # fmt: skip
    assert {p.name for p in (results / "records").iterdir()} == {"build-cot.json", "build-pref.json", "train-sft.json",
                                                                 "train-dpo.json", "eval-eval.json", "state.json"}  # fmt: skip
    assert "| model | gym_chain_sum (ID) | gym_basic_arithmetic | ID avg | OOD avg |" in report
    assert "trained by step `sft` with recipe" in report and "McNemar" in report
    results = json.loads((work / "report" / "results.json").read_text())
    assert set(results["eval"]["models"]) == {"base", "sft", "dpo"} and (work / "report" / "eval.png").is_file()
    # a document counts as not answered exactly when its generation states no answer (here the 135M
    # answers "The answer is 171." at once, so none is missing and the report has no such table)
    for label in ("base", "sft", "dpo"):
        for task in ("hubtool_gym_chain_sum", "hubtool_gym_basic_arithmetic"):
            said = [json.loads(line)["resps"][0][0] for line in
                    (work / "evals" / "eval" / label / f"samples_{task}.jsonl").read_text().splitlines()
                    if json.loads(line)["filter"] == "strict-match"]  # fmt: skip
            assert results["eval"]["unanswered"][label][task]["unanswered"] == \
                sum("answer is" not in text.lower() for text in said) and len(said) == 3  # fmt: skip
    missing = sum(c["unanswered"] for per_task in results["eval"]["unanswered"].values() for c in per_task.values())
    assert ("### No answer read (strict-match)" in report) == (missing > 0)
    manifest = json.loads((work / "builds" / "cot" / "manifest.json").read_text())
    assert manifest["config"]["decontaminate"] == "gym_chain_sum,gym_basic_arithmetic"  # against its own eval
    again = CliRunner().invoke(main, ["run", str(ROOT / "experiments" / "cpu-smoke.yaml"), "--workdir", str(work)])
    assert again.output.count("up to date, skipped") == 7
    spec = yaml.safe_load((ROOT / "experiments" / "cpu-smoke.yaml").read_text())
    spec["eval"]["limit"] = 2
    plan, _ = _run(_write(tmp_path, spec, "smoke.yaml"), work)
    assert [s for s, a in plan.actions.items() if a == "run"] == ["eval"]
    # a second eval step (stage 2 against stage 1, say) takes the models the first one scored alike from
    # its folder, under its own labels
    from toolkit.evaluate import run as eval_run

    real, ran = eval_run._evaluate_one, []
    monkeypatch.setattr(eval_run, "_evaluate_one", lambda spec, *a, **k: ran.append(spec.label) or real(spec, *a, **k))
    spec["steps"]["eval-again"] = {"eval": {"student": "{sft}", "dpo": "{dpo}", "base": "smollm2-135m"}}
    plan, _ = _run(_write(tmp_path, spec, "smoke.yaml"), work)
    assert [s for s, a in plan.actions.items() if a == "run"] == ["eval-again"] and ran == []
    for before, after in [("sft", "student"), ("dpo", "dpo")]:
        assert (work / "evals" / "eval-again" / after / "samples_hubtool_gym_chain_sum.jsonl").read_bytes() == \
            (work / "evals" / "eval" / before / "samples_hubtool_gym_chain_sum.jsonl").read_bytes()  # fmt: skip
    results = json.loads((work / "report" / "results.json").read_text())
    scores = {f: v["score"] for f, v in results["eval-again"]["models"]["student"].items()}
    assert scores == {f: v["score"] for f, v in results["eval"]["models"]["sft"].items()}
