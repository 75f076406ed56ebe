"""Tests run offline, with every cache in a temp dir, before any Hugging Face import."""

from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
from pathlib import Path

import pytest

_TMP = tempfile.mkdtemp(prefix="hubtool-tests-")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("HF_HOME", os.path.join(_TMP, "hf"))
os.environ["HF_DATASETS_CACHE"] = os.path.join(_TMP, "hf-datasets")
os.environ["HUBTOOL_HOME"] = os.path.join(_TMP, "hubtool")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Several tests run a model in a subprocess (a server, lm_eval) beside one in this process; with
# torch's default of one thread per core they oversubscribe 2 cores and run several times slower.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.pop("HF_TOKEN", None)
os.environ.pop("OPENAI_API_KEY", None)
# The converted default model is expensive to make (~25 s); tests share one copy across runs.
os.environ.setdefault("HUBTOOL_MODEL_CACHE", os.path.expanduser("~/.cache/hubtool/models"))

from tests.servers import proxy_for  # noqa: E402, F401  (a fixture shared by the server tests)


@pytest.fixture(scope="session")
def smol_path() -> str:
    """The embedded default model as a checkpoint folder (converted once)."""
    from toolkit.teachers.models import resolve_model_path

    return resolve_model_path("smollm2-135m")


@pytest.fixture(scope="module")
def small_torch():
    """One torch thread: on a busy 2-core machine two threads thrash (measured 5x slower)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def load_module(path: Path, name: str):
    """A file that is not a package module (an eval task's hooks, a generator script), imported by path."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def manager():
    """lm-eval's TaskManager over the shipped eval tasks."""
    from toolkit.sources import eval_tasks as T

    return T.task_manager()
