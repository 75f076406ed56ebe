"""The built wheel works on its own: installed into a fresh venv and run from a directory outside
the source tree, it builds, pushes, trains (1 step) and evaluates (1 document) with the embedded
default model, reading its card templates, recipes and eval tasks from the installed package.

The fresh venv gets the wheel and nothing else (`--no-deps`); its dependencies come from the venv
running the tests, whose site-packages a .pth file appends to sys.path. A .pth line adds a folder
but runs no .pth file inside it, so the checkout's own editable install of hubtool stays out: the
only `toolkit` the venv can import is the wheel's.
"""

from __future__ import annotations

import importlib.util
import json
import os
import site
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: int = 600) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(cmd)} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    """A fresh venv with the wheel built from this checkout installed, dependencies borrowed."""
    base = tmp_path_factory.mktemp("wheel")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(base / "dist"), str(ROOT)]
    if importlib.util.find_spec("hatchling"):  # `make test` installs it (dev extra): no download needed
        build.insert(4, "--no-build-isolation")
    _run(build, base, env)
    (wheel,) = (base / "dist").glob("hubtool-*.whl")

    venv = base / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], base, env)
    python = venv / "bin" / "python"
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    borrowed = [p for p in dict.fromkeys(site.getsitepackages()) if Path(p).is_dir()]
    Path(purelib, "_borrowed_dependencies.pth").write_text("".join(f"{p}\n" for p in borrowed))
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index",
          "--quiet", str(wheel)], base, env)  # fmt: skip
    return venv


@pytest.fixture
def env(venv, tmp_path) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "HUBTOOL_EVAL_TASKS")}
    return keep | {
        "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "HUBTOOL_HOME": str(tmp_path / "home"),  # a registry and call cache of its own
        "OMP_NUM_THREADS": "1",
        # HUBTOOL_MODEL_CACHE (tests/conftest.py) is kept: the converted default model is shared
    }


def test_the_installed_package_is_the_one_that_runs(venv, env, tmp_path):
    code = ("import toolkit; from toolkit.resources import resource_dir; print(toolkit.__file__); "
            "print(*(resource_dir(n) for n in ('dataset_cards', 'recipes', 'eval_tasks')), sep='\\n')")  # fmt: skip
    lines = _run([str(venv / "bin" / "python"), "-c", code], tmp_path, env).stdout.split()
    package = Path(lines[0]).parent
    assert package.is_relative_to(venv) and not package.is_relative_to(ROOT)
    assert [Path(p) for p in lines[1:]] == [package / "_data" / n for n in ("dataset_cards", "recipes", "eval_tasks")]
    tasks_path = _run(["hubtool", "eval", "--tasks-path"], tmp_path, env).stdout.strip()
    assert Path(tasks_path) == package / "_data" / "eval_tasks"


def test_build_push_train_eval_from_outside_the_source_tree(venv, env, tmp_path):
    steps = {
        "build": ["hubtool", "build-dataset", "cot", "--source", "gym:basic_arithmetic", "--limit", "1",
                  "--samples", "1", "--max-new-tokens", "16", "--keep", "all", "--out", "runs/x"],
        "push": ["hubtool", "push", "runs/x", "me/x"],
        "train": ["hubtool", "train", "cot/smollm2-135m-lora-smoke", "--set", "dataset_name=me/x",
                  "--set", "max_steps=1", "--output-dir", "out/s"],
        "eval": ["hubtool", "eval", "--model", "smollm2-135m", "--tasks", "hubtool_gym_chain_sum", "--limit", "1",
                 "--max-gen-toks", "8", "-o", "evals/x"],
    }  # fmt: skip
    seconds = {}
    for name, cmd in steps.items():
        start = time.monotonic()
        _run(cmd, tmp_path, env)
        seconds[name] = round(time.monotonic() - start, 1)
    print("seconds per step:", seconds)

    run = tmp_path / "runs" / "x"
    assert (run / "README.md").is_file() and (run / "manifest.json").is_file()
    assert list((run / "data").glob("*.parquet"))
    assert "me/x" in _run(["hubtool", "ls"], tmp_path, env).stdout
    student = tmp_path / "out" / "s"
    assert (student / "adapter_config.json").is_file()
    record = json.loads((student / "hubtool_train.json").read_text())
    assert Path(record["recipe"]["path"]).is_relative_to(venv)  # the recipe the wheel ships
    evals = tmp_path / "evals" / "x"
    assert (evals / "report.md").is_file() and (evals / "scores.json").is_file()
    assert "gym_chain_sum" in (evals / "report.md").read_text()
