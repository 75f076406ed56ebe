"""The method contract (issue 22): every registered method declares all its parts and each part is
there and works; and a sixth method is its own folder plus one registry line, its prompt, card,
recipe, eval task and trainer included, with no edit anywhere else."""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from click.testing import CliRunner

from tests.test_method_rows import BUILDS
from tests.test_prompt_formats import CASES, variables
from toolkit import prompts
from toolkit.builders.method import Method
from toolkit.cli import main
from toolkit.methods import eval_task_dirs, get_method, method_for_recipe_folder, methods
from toolkit.rundir import read_manifest

from .fakes import render_card, rows

METHODS = [m.name for m in methods()]


def _config_templates(method: Method) -> list[str]:
    """The templates a default config of the method uses (fields named *template or *templates)."""
    names: list[str] = []
    for f in dataclasses.fields(method.config):
        if f.name.endswith(("template", "templates")) and f.default is not dataclasses.MISSING:
            names += [f.default] if isinstance(f.default, str) else list(f.default or ())
    return names


# --- every registered method: what it declares exists and works -------------------------------------------
@pytest.mark.parametrize("name", METHODS)
def test_each_declared_file_and_folder_exists(name):
    method = get_method(name)
    assert method.folder.is_dir() and (method.folder / "__init__.py").is_file()
    assert method.recipes_dir.is_dir(), f"{name}: no recipes folder {method.recipes_dir}"
    assert method_for_recipe_folder(method.recipe_folder) is method
    if method.recipe:
        folder, _, recipe = method.recipe.partition("/")
        assert folder == method.recipe_folder and (method.recipes_dir / f"{recipe}.yaml").is_file()
    card = method.card_template
    assert (card if isinstance(card, Path) else Path(__file__).parents[1] / "dataset_cards" / card).is_file()
    for folder in method.eval_task_dirs:
        assert folder.is_dir() and any(folder.rglob("*.yaml")), f"{name}: eval task folder {folder} holds no task"
    module, _, factory = method.trainer.factory.partition(":")
    assert importlib.util.find_spec(module) is not None and factory, method.trainer.factory
    assert method.trainer.config in ("sft", "dpo") and {"sft": "sft", "preference": "dpo"}[method.kind] == method.trainer.config
    for setting, parser in method.trainer.settings.items():
        assert setting.startswith("HUBTOOL_") and importlib.util.find_spec(parser.partition(":")[0]) is not None
    for template in _config_templates(method):
        assert prompts.template_source(template, method.prompt_dirs), template
    if method.student_prompt is not None:
        assert method.student_prompt in {f.name for f in dataclasses.fields(method.config)}


def test_no_method_template_shadows_a_shared_one_or_another_methods():
    shared = set(prompts.known_templates())
    owners: dict[str, str] = {}
    for method in methods():
        own = {p.stem for d in method.prompt_dirs for p in d.glob("*.jinja")}
        assert not own & shared, f"{method.name} ships {own & shared}, which toolkit/prompts/ has too"
        for template in own:
            assert owners.setdefault(template, method.name) == method.name, f"{template}: two methods ship it"


def test_every_answer_type_is_rendered():
    assert {CASES[c][0] for c in CASES} == set(prompts.ANSWER_HINTS)


@pytest.mark.parametrize("name", METHODS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_every_template_a_method_uses_renders_for_every_answer_type(name, case):
    method = get_method(name)
    own = [p.stem for d in method.prompt_dirs for p in sorted(d.glob("*.jinja"))]
    for template in dict.fromkeys([*own, *_config_templates(method)]):
        given = variables(case)
        missing = prompts.template_variables(template, method.prompt_dirs) - given.keys()
        assert not missing, f"{template} takes variables the test does not know: {missing}"
        assert prompts.render(template, dirs=method.prompt_dirs, **given).strip(), template


def _trl_parse(path: Path, config: str):
    """What `trl sft|dpo --config PATH` does, minus the launch: TRL's parser, unknown keys as errors."""
    import torch
    from trl import DPOConfig, ModelConfig, ScriptArguments, SFTConfig, TrlParser

    parser = TrlParser((ScriptArguments, SFTConfig if config == "sft" else DPOConfig, ModelConfig))
    cpu = [] if torch.cuda.is_available() else ["--use_cpu", "true"]
    return parser.parse_args_and_config(["--config", str(path), *cpu], fail_with_unknown_args=True)


@pytest.mark.parametrize("name", METHODS)
def test_every_recipe_in_its_folder_parses_with_trls_parser(name):
    method = get_method(name)
    recipes = sorted(method.recipes_dir.glob("*.yaml"))
    assert recipes, f"{name}: no recipe in {method.recipes_dir}"
    for path in recipes:
        script, training, model = _trl_parse(path, method.trainer.config)
        assert script.dataset_name and model.model_name_or_path and training.output_dir, path


def test_every_method_has_a_card_golden_and_a_rows_golden():
    """tests/test_method_rows.py builds each method and compares its rows and card to golden files."""
    assert sorted(BUILDS) == sorted(METHODS)
    golden = Path(__file__).parent / "golden" / "rows"
    for name in METHODS:
        assert (golden / f"{name}.json").is_file() and (golden / f"card_{name}.md").is_file()


# --- a sixth method: one folder and one registry line ------------------------------------------------------
PACKAGE = {
    "__init__.py": '''
        """A throwaway method: the teacher's reply to its own prompt, kept as it is."""
        from dataclasses import dataclass
        from pathlib import Path

        from toolkit import prompts
        from toolkit.builders.config import BuildConfig, param
        from toolkit.builders.method import Method, Paper, Trainer, Work
        from toolkit.builders.rows import SFTRow, assistant, user
        from toolkit.teachers.base import CallFailure, Request

        FOLDER = Path(__file__).parent
        PROMPT_DIRS = (FOLDER / "prompts",)


        @dataclass(frozen=True, kw_only=True)
        class EchoConfig(BuildConfig):
            teacher: str = param("fake:right", help="Who answers.", model=True)
            template: str = param("echo_ask", help="Prompt template.")


        async def run(problem, work: Work[EchoConfig]) -> None:
            text = prompts.render(work.config.template, dirs=PROMPT_DIRS, question=problem.question,
                                  answer_hint=prompts.answer_hint(problem.answer_type, problem.choices))
            messages = user(text)
            [result] = await work.teacher.gather(Request(tuple(messages), params=work.config.sampling))
            if isinstance(result, CallFailure):
                work.fail(result.error)
                return
            work.counts["kept"] += 1
            work.keep(SFTRow(prompt=messages, completion=assistant(result[0].text), id=problem.id,
                             source=problem.source, question=problem.question, gold=problem.gold, pred=None,
                             correct=False, answer_type=problem.answer_type, choices=[],
                             teacher=work.teacher.identity, sample_idx=0, finish_reason=result[0].finish_reason,
                             num_tokens=result[0].completion_tokens))


        TRAINER = Trainer(name="echo", config="sft", factory="sixth_method.trainer:make",
                          settings={"HUBTOOL_ECHO_GAIN": "sixth_method.trainer:parse_gain"})

        METHOD = Method(
            name="echo", folder=FOLDER, summary="Echo what the teacher says.", help="Echo what the teacher says.",
            config=EchoConfig, row=SFTRow, kind="sft", trainer=TRAINER, run=run, counts=("problems", "failed", "kept"),
            paper=Paper(name="Echo", citation="Nobody, 2026", url="https://example.org", summary="Echoes.",
                        bibtex="@misc{echo, title={Echo}}"),
            card=FOLDER / "card.md.jinja", recipes=FOLDER / "recipes" / "echo", recipe="echo/tiny",
            eval_tasks=(FOLDER / "eval_tasks",), templates=lambda c: (c.template,),
        )
    ''',
    "trainer.py": '''
        """Its own trainer: no torch here, the factory says what it was given."""


        def parse_gain(value):
            return float(value)


        def make(*, settings, **trl_args):
            return {"made_by": "echo", "settings": settings, "trl_args": sorted(trl_args)}
    ''',
    "prompts/echo_ask.jinja": "Echo this: {{ question }}\n\nEnd with: The answer is ___. ({{ answer_hint }})\n",
    "card.md.jinja": '''
        {% set trl_format = "conversational prompt-completion" %}
        {% set trainer = "SFTTrainer" %}
        # {{ name }}

        Echo card: {{ n_rows }} rows by {{ teacher_identity }}, prompt `{{ templates | list | first }}`.

        {% include "_train.md.jinja" %}
    ''',
    "recipes/echo/tiny.yaml": '''
        model_name_or_path: HuggingFaceTB/SmolLM2-135M-Instruct
        dataset_name: me/echo
        output_dir: out/echo
        max_steps: 1
        report_to: none
        env:
          HUBTOOL_ECHO_GAIN: 2.5
    ''',
    "eval_tasks/hubtool_echo_chain_sum.yaml": '''
        task: hubtool_echo_chain_sum
        dataset_path: json
        dataset_kwargs:
          data_files: {test: questions.jsonl}
        test_split: test
        output_type: generate_until
        doc_to_text: "{{question}}"
        doc_to_target: "{{answer}}"
        metric_list:
          - metric: exact_match
        metadata:
          version: 1.0
    ''',
}


@pytest.fixture
def echo_method(tmp_path, monkeypatch):
    import toolkit.methods as registry

    for name, text in PACKAGE.items():
        path = tmp_path / "sixth_method" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "MODULES", [*registry.MODULES, "sixth_method"])  # the one registry line
    registry.reset()
    yield tmp_path / "sixth_method"
    registry.reset()
    for module in [m for m in sys.modules if m.split(".")[0] == "sixth_method"]:  # the next test's is another
        del sys.modules[module]


def test_a_sixth_method_is_its_folder_and_one_registry_line(tmp_path, echo_method, monkeypatch):
    from toolkit.sources import eval_tasks as tasks
    from toolkit.training import load_recipe, trainer_for
    from toolkit.training.run import build_trainer
    from toolkit.training.trainers import load_factory

    method = get_method("echo")
    assert method.folder == echo_method and method.prompt_dirs == (echo_method / "prompts",)
    # a build through the CLI, on the fake teacher, with its own prompt
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["build-dataset", "echo", "--source", "gym:chain_sum", "--limit", "2",
                                       "--out", str(out), "--cache", str(tmp_path / "c.sqlite")])  # fmt: skip
    assert result.exit_code == 0, result.output
    manifest = read_manifest(out)
    assert manifest.method == "echo" and manifest.row_format.recipe == "echo/tiny"
    assert manifest.prompt_templates == {"echo_ask": (echo_method / "prompts" / "echo_ask.jinja").read_text()}
    kept = rows(out)
    assert len(kept) == 2 and all(r["prompt"][0]["content"].startswith("Echo this: ") for r in kept)
    # its own card, which includes dataset_cards/'s training section
    for card in ((out / "README.md").read_text(), render_card(out, repo_id="me/echo")):
        assert "Echo card: 2 rows by fake:" in card and "prompt `echo_ask`" in card
        assert "hubtool train echo/tiny --set dataset_name=" in card
    # its recipe, by name, trains with its own trainer and settings (no training: the trainer is made)
    recipe = load_recipe("echo/tiny")
    assert recipe.path == echo_method / "recipes" / "echo" / "tiny.yaml"
    assert recipe.trainer is method.trainer is trainer_for(recipe.path)
    assert recipe.settings == {"HUBTOOL_ECHO_GAIN": 2.5}
    assert load_factory(recipe.trainer) is importlib.import_module("sixth_method.trainer").make
    made = build_trainer(recipe, SimpleNamespace(dataset=["row"]), SimpleNamespace(path="student"))
    assert made["made_by"] == "echo" and made["settings"] == {"HUBTOOL_ECHO_GAIN": 2.5}
    assert {"model", "args", "train_dataset", "peft_config"} <= set(made["trl_args"])
    # its eval tasks are indexed beside eval_tasks/
    assert echo_method / "eval_tasks" in tasks.task_dirs(eval_task_dirs())
    assert "hubtool_echo_chain_sum" in tasks.catalog(tasks.task_manager(extra=eval_task_dirs())).tasks


def test_the_registry_is_all_that_names_the_methods():
    """Outside toolkit/methods/, no module of the layers that consume methods names one (they ask the
    registry); the README's tables and examples may."""
    root = Path(__file__).parents[1] / "toolkit"
    consumers = [*(root / "training").glob("*.py"), *(root / "evaluate").glob("*.py"), root / "inspect.py",
                 root / "cards.py", root / "rundir.py", *(root / "builders").glob("*.py")]  # fmt: skip
    for path in consumers:
        text = path.read_text()
        for name in ("toolkit.methods.cot", "toolkit.methods.preference", "toolkit.methods.counterfactual",
                     "toolkit.methods.mixed", "toolkit.methods.evolve", "MixedSFTTrainer", "HUBTOOL_MIXED_ALPHA"):
            assert name not in text, f"{path.relative_to(root.parent)} names {name}"
    recipe_yaml = yaml.safe_load((Path(__file__).parents[1] / "recipes" / "mixed" / "smollm2-135m-lora.yaml").read_text())
    assert set(recipe_yaml["env"]) == set(get_method("mixed").trainer.settings)
