"""Tests run offline, with every cache in a temp dir, before any Hugging Face import."""

from __future__ import annotations

import os
import tempfile

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
