"""What a card says about how its data was made, and what it must not say (issue 21 items 25 and
31, issue 25 items 15-17): library versions, the preset and the user's overrides, the server's
own account of its weights, a data-quality section, and no path of the machine it was built on."""

from __future__ import annotations

import hashlib
import json
import re

import pyarrow.parquet as pq
from click.testing import CliRunner

from toolkit.cli import main
from toolkit.rundir import read_manifest


def _mc_source(tmp_path) -> str:
    path = tmp_path / "mc.jsonl"
    lines = [{"question": f"Which planet is number {i}?", "choices": ["Mars", "Venus", "Earth"],
              "answer": "ABC"[i % 3]} for i in range(6)]  # fmt: skip
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return f"file:{path}"


def _cli(*args: str) -> None:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output


# -- issue 25 item 15: library versions ----------------------------------------------------------


def test_every_build_records_its_library_versions(tmp_path):
    import importlib.metadata as md
    import platform

    _cli("build-dataset", "cot", "--source", "gym:chain_sum", "--limit", "2", "--teacher", "fake:right",
         "--out", str(tmp_path / "run"), "--cache", str(tmp_path / "c.sqlite"))  # fmt: skip
    versions = read_manifest(tmp_path / "run").versions
    assert versions["python"] == platform.python_version()
    for package in ("pyarrow", "jinja2", "datasets", "reasoning-gym", "aiohttp"):
        assert versions[package] == md.version(package), package
    card = (tmp_path / "run" / "README.md").read_text()
    table = card.split("### Library versions")[1].split("\n## ")[0]
    assert f"| pyarrow | {md.version('pyarrow')} |" in table
    assert f"| reasoning-gym | {md.version('reasoning-gym')} |" in table


# -- issue 21 item 25: the preset and what the user overrode ---------------------------------------


def test_the_card_says_which_preset_values_the_user_overrode(tmp_path):
    _cli("build-dataset", "cot", "--preset", "ranaldi-eacl24", "--keep", "correct", "--samples", "3",
         "--source", _mc_source(tmp_path), "--choices-field", "choices", "--limit", "3", "--teacher", "fake:right",
         "--out", str(tmp_path / "run"), "--cache", str(tmp_path / "c.sqlite"))  # fmt: skip
    manifest = read_manifest(tmp_path / "run")
    assert (manifest.config["keep"], manifest.config["samples"]) == ("correct", 3)
    assert manifest.preset_overrides == {"keep": "correct", "samples": 3}
    card = (tmp_path / "run" / "README.md").read_text()
    assert "Built with the preset `ranaldi-eacl24`, with 2 of its values replaced by the user." in card
    assert "| `keep` | `all` | `correct` (the user's value) |" in card
    assert "| `samples` | `1` | `3` (the user's value) |" in card
    assert "| `template` | `ranaldi-cot` | `ranaldi-cot` |" in card
    assert "| `temperature` | `0.0` | `0.0` |" in card
    assert "| `keep` | `all` |\n" not in card  # the old table said only what the preset set


# -- issue 21 item 31: no path of the machine -----------------------------------------------------


def test_a_card_built_and_pushed_under_a_home_folder_names_no_part_of_it(tmp_path, monkeypatch):
    home = tmp_path / "home" / "alice"
    project = home / "secret-project"
    (project / "data").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("HUBTOOL_HOME", str(home / ".cache" / "hubtool"))
    questions = project / "data" / "sums.jsonl"
    questions.write_text("".join(json.dumps({"question": f"What is {i} + {i}?", "answer": 2 * i}) + "\n"
                                 for i in range(3)))  # fmt: skip
    script = project / "teacher-script.jsonl"
    script.write_text(json.dumps({"match": "What is", "replies": ["We add the numbers.\nThe answer is 0."]}) + "\n")
    run = project / "runs" / "sums-cot"
    _cli("build-dataset", "cot", "--source", f"file:{questions}", "--teacher", f"fake:{script}", "--keep", "all",
         "--out", str(run), "--cache", str(home / ".cache" / "calls.sqlite"))  # fmt: skip
    _cli("push", str(run), "alice/sums-cot")
    published = home / ".cache" / "hubtool" / "datasets" / "alice" / "sums-cot"
    texts = {name: (published / name).read_text() for name in ("README.md", "manifest.json")}
    texts["run card"] = (run / "README.md").read_text()
    # the rows themselves are published too: each names its teacher and source, not where they lay
    parquets = sorted(published.rglob("*.parquet"))
    assert parquets
    for path in parquets:
        rows = pq.read_table(path).to_pylist()
        assert rows and all(row["teacher"].startswith("fake:a local model@") for row in rows)
        texts[path.name] = json.dumps(rows)
    for name, text in texts.items():
        for part in (str(tmp_path), "/home/", "alice/secret", "secret-project", "teacher-script", ".cache"):
            assert part not in text, f"{part!r} in {name}"
    card = texts["README.md"]
    assert re.search(r"\| teacher \| `a local model` \| fake \| [0-9a-f]{12} \|", card)  # its hash
    # sha256sum of the three lines written above, pinned: the card names the file by its content
    assert "| `file:sums.jsonl` | local file sums.jsonl | - | train | sha256 `616cc357cb8a` | number |" in card
    assert '"source": "file:sums.jsonl"' in card  # the config, as published
    manifest = json.loads(texts["manifest.json"])
    assert manifest["source"]["spec"] == "file:sums.jsonl" and manifest["teacher"] == "fake:a local model"
    assert manifest["models"][0]["model"] == "a local model"
    assert read_manifest(run).source["spec"] == f"file:{questions}"  # the run's own record keeps its paths


def test_command_lines_name_files_and_models_not_where_they_lie(tmp_path, monkeypatch):
    from toolkit.public_paths import scrub, scrub_command

    monkeypatch.setenv("HUBTOOL_HOME", "/home/alice/.cache/hubtool")
    run = "/home/alice/proj/runs/cot"
    command = ("hubtool build-dataset cot --source file:/home/alice/proj/data/q.jsonl --student "
               "transformers:/home/alice/proj/models/sft --teacher openai:m@http://10.0.0.5:8000/v1 "
               "--out /home/alice/proj/runs/cot --eval-data-dir=/home/alice/evals --cache ~/c.sqlite")
    assert scrub_command(command, run) == (
        "hubtool build-dataset cot --source file:q.jsonl --student 'transformers:a local model' --teacher "
        "openai:m@http://10.0.0.5:8000/v1 --out cot --eval-data-dir=evals --cache c.sqlite")
    assert scrub_command("hubtool run /home/alice/proj/experiments/e.yaml --workdir /home/alice/w") == (
        "hubtool run e.yaml --workdir w")
    assert scrub_command("hubtool train /home/alice/.cache/hubtool/models/smollm2-135m x") == (
        "hubtool train smollm2-135m x")
    # an eval report's note on a DPO adapter trained on a merged SFT student names both by their runs
    assert scrub("LoRA adapter /home/alice/w/models/dpo on /home/alice/w/models/sft/merged (hf)") == (
        "LoRA adapter dpo on sft/merged (hf)")


def test_a_model_card_names_recipe_models_and_data_not_their_folders(monkeypatch):
    from toolkit.resources import resource_dir
    from toolkit.training.provenance import model_card

    monkeypatch.setenv("HUBTOOL_HOME", "/home/alice/.cache/hubtool")
    monkeypatch.delenv("HUBTOOL_MODEL_CACHE", raising=False)
    out = "/home/alice/proj/work/models/dpo"
    record = {  # the shape toolkit.training.run writes (see experiments/results/cpu-effect/2026-11-25/records)
        "trainer": "dpo", "output_dir": out,
        "recipe": {"path": str(resource_dir("recipes") / "self-refine" / "dpo-lora.yaml"), "sha256": "cf6c7218c96a" + "0" * 52,
                   "overrides": {"max_steps": "40", "model_name_or_path": "/home/alice/proj/work/models/sft",
                                 "output_dir": out}},
        "dataset": {"name": "experiments/cpu-effect-pref", "local": True, "split": "train", "rows": 66,
                    "path": "/home/alice/.cache/hubtool/datasets/.versions/experiments/cpu-effect-pref/v017",
                    "revision": None, "fingerprint": "abc123"},
        "model": {"base_model": "HuggingFaceTB/SmolLM2-135M-Instruct", "path": "/home/alice/proj/work/models/sft/merged",
                  "note": "LoRA student /home/alice/proj/work/models/sft, merged into full weights at "
                          "/home/alice/proj/work/models/sft/merged"},
        "peft": {"method": "LoRA", "r": 8, "alpha": 16, "dropout": 0.05, "target_modules": "all-linear"},
        "training": {"global_steps": 40, "seconds": 400.0, "seconds_per_step": 10.0, "train_loss": 0.5},
        "outputs": {"adapter": True, "merged": out + "/merged"},
    }  # fmt: skip
    card = model_card(record)
    for part in ("/home", "alice", "proj/", "/work"):
        assert part not in card, part
    assert ("| dataset | `experiments/cpu-effect-pref` (hubtool's local registry; `hubtool push --hub` publishes it), "
            "split `train`, 66 rows |") in card
    assert "| base model | `HuggingFaceTB/SmolLM2-135M-Instruct` (loaded from a local copy) |" in card
    assert "| recipe | `self-refine/dpo-lora` (sha256 `cf6c7218c96a`), copied to `recipe.yaml` |" in card
    assert "| overrides | `max_steps=40`, `model_name_or_path=sft`, `output_dir=dpo` |" in card
    assert "| note | LoRA student sft, merged into full weights at sft/merged |" in card
    assert 'AutoPeftModelForCausalLM.from_pretrained("dpo")' in card and "pretrained=dpo/merged" in card
    record["model"]["path"] = "/home/alice/.cache/hubtool/models/smollm2-135m"
    record["recipe"]["path"] = "/home/alice/my-recipes/sft/mine.yaml"
    card = model_card(record)
    assert "(loaded from hubtool's `smollm2-135m`)" in card and "| recipe | `mine.yaml` (sha256 `cf6c7218c96a`)" in card


def test_committed_results_hold_no_path_of_the_machine_they_were_made_on():
    from pathlib import Path

    root = Path(__file__).parents[1]
    machine = re.compile(r"(?<![\w.])/(home|root|work|tmp|Users|mnt|scratch)/")
    pending = {"bench/evolve_search.py"}  # its docstring is rewritten on branch `evolve`; drop at merge
    found = [f"{p.relative_to(root)}:{n}" for folder in ("experiments", "bench") for p in sorted((root / folder).rglob("*"))
             if p.is_file() and p.suffix in (".md", ".json", ".yaml", ".py", ".csv", ".txt")
             and p.relative_to(root).as_posix() not in pending
             for n, line in enumerate(p.read_text(errors="replace").splitlines(), 1) if machine.search(line)]  # fmt: skip
    assert found == []


# -- issue 25 item 16: which weights stand behind a served name -----------------------------------

LLAMACPP_MODELS = [{"id": "coder", "object": "model", "created": 1733443200, "owned_by": "llamacpp",
                    "meta": {"vocab_type": 2, "n_vocab": 151936, "n_ctx_train": 32768, "n_embd": 896,
                             "n_params": 494032768, "size": 491400032}}]  # llama-server --alias coder
LLAMACPP_PROPS = {"model_path": "/home/alice/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", "total_slots": 1}


def _served_build(tmp_path, server, model: str = "coder") -> str:
    from .fault_server import write_sums

    tmp_path.mkdir(parents=True, exist_ok=True)
    write_sums(tmp_path / "sums.jsonl", 1)
    _cli("build-dataset", "cot", "--source", f"file:{tmp_path / 'sums.jsonl'}", "--teacher", f"openai:{model}@{server.url}",
         "--samples", "1", "--out", str(tmp_path / "run"), "--cache", str(tmp_path / "c.sqlite"))  # fmt: skip
    return (tmp_path / "run" / "README.md").read_text()


def test_a_llamacpp_alias_is_identified_by_what_the_server_says_of_its_weights(tmp_path):
    from .fault_server import FaultServer

    with FaultServer("ok", models=LLAMACPP_MODELS, props=LLAMACPP_PROPS) as server:
        card = _served_build(tmp_path, server)
    weights = read_manifest(tmp_path / "run").models[0].weights
    assert weights == {"id": "coder", "owned_by": "llamacpp", "n_params": "494032768", "size": "491400032",
                       "n_ctx_train": "32768", "n_vocab": "151936",
                       "model_path": "/home/alice/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"}  # fmt: skip
    assert ("`coder` (teacher), as its server describes it: id `coder`, model_path "
            "`qwen2.5-coder-0.5b-instruct-q4_k_m.gguf`, n_ctx_train `32768`, n_params `494032768`, n_vocab `151936`, "
            "owned_by `llamacpp`, size `491400032`, answers signed `coder fp_fault`.") in card
    assert "/home/alice" not in card and "did not say which weights" not in card


def test_vllm_root_is_recorded_and_a_bare_alias_is_flagged(tmp_path):
    from .fault_server import FaultServer

    with FaultServer("ok", root="Qwen/Qwen2.5-Coder-0.5B-Instruct") as server:
        card = _served_build(tmp_path / "vllm", server, model="fault-model")
    assert ("`fault-model` (teacher), as its server describes it: id `fault-model`, root "
            "`Qwen/Qwen2.5-Coder-0.5B-Instruct`, answers signed `fault-model fp_fault`.") in card
    # llama-cpp-python's server with --model_alias: a name and nothing else
    with FaultServer("ok", models=[{"id": "coder", "object": "model", "owned_by": "me", "permissions": []}]) as server:
        card = _served_build(tmp_path / "alias", server)
    assert read_manifest(tmp_path / "alias" / "run").models[0].weights == {"id": "coder", "owned_by": "me"}
    assert ("The server did not say which weights answer to the name `coder`: if that name is an alias, this\n"
            "card cannot tell which model wrote the rows.") in card


def test_the_weights_file_hook_records_name_and_hash(tmp_path):
    from toolkit.teachers.openai_backend import OpenAITeacher

    gguf = tmp_path / "qwen.gguf"
    gguf.write_bytes(b"GGUF" + bytes(range(256)) * 10)
    teacher = OpenAITeacher.from_spec("coder@http://127.0.0.1:9/v1")
    teacher.record_weights_file(gguf)
    assert teacher.weights == {"file": "qwen.gguf", "sha256": hashlib.sha256(gguf.read_bytes()).hexdigest()}
