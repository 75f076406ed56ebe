"""A model's eval results kept with what made them, so they are not made twice.

An evaluation of several models on a CPU takes hours. Each model's folder gets `hubtool_eval.json`
last, after its results and samples: the weights it read (every file by name, size and sha256), the
tasks and their files, the options that change a generation or a score, the prompt it was asked with,
lm-eval's version and a digest of hubtool's own code (the answer checkers score inside the tasks).
A later `hubtool eval` into the same folder that would make the same key takes the model's results
from disk instead of running it again: a run killed after its second model starts at its third. An
experiment's later eval step also looks in its earlier steps' folders (`reuse=`), so the SFT student
that stage 1 scored is not scored again beside the DPO students of stage 2. Anything that differs,
a retrained checkpoint included, makes another key and the model runs. Where the weights lie does
not count, so a run moved to another machine under other paths keeps its scores.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import shutil
from collections.abc import Iterable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
KEY_FILE = "hubtool_eval.json"
WEIGHT_ARGS = ("pretrained", "peft", "lora_local_path")  # lm-eval model args that name a weights folder
CODE = Path(__file__).resolve().parents[1]  # the toolkit package
# files a training run leaves beside the weights that change from run to run (times, paths)
NOT_WEIGHTS = {"README.md", "hubtool_train.json", "recipe.yaml", "training_args.bin", "trainer_state.json", KEY_FILE}


def result_key(lm_eval_model: str, args: dict[str, Any], tasks: Sequence[str], task_dirs: Iterable[Path],
               options: dict[str, Any], prompt: tuple[str, str] | None) -> dict[str, Any]:  # fmt: skip
    """What a model's results depend on, as JSON-able values (equal keys: the same results)."""
    local = {k for k in WEIGHT_ARGS if k in args and Path(str(args[k])).exists()}
    return {
        "model": lm_eval_model,
        # a local weights folder counts by its files, not by where it lies: a run moved to another
        # machine (another HUBTOOL_HOME, another workdir) keeps its scores
        "args": {k: "<local: see weights>" if k in local else str(v) for k, v in sorted(args.items())},
        "weights": {k: stamp(Path(args[k])) for k in sorted(local)},
        "tasks": list(tasks),
        "task_files": _digest(p for d in task_dirs for p in sorted(Path(d).rglob("*")) if _source(p)),
        "options": {k: str(v) for k, v in sorted(options.items())},
        "prompt": list(prompt) if prompt else None,
        "lm_eval": importlib.metadata.version("lm_eval"),
        "hubtool_code": _code_digest(),
    }


def stamp(path: Path) -> list[list[Any]]:
    """The files of a weights folder that make the model (weights, configs, tokenizer, chat template) by
    name, size and content hash: a retrained folder with other weights differs, one trained again to the
    same bytes (a deterministic CPU run) does not. Records of the training (its card, its record with
    times) and subfolders (an adapter's merged/ copy, checkpoints) are not the model being scored."""
    files = [path] if path.is_file() else sorted(p for p in path.iterdir() if p.is_file() and p.name not in NOT_WEIGHTS)
    return [[p.name, p.stat().st_size, _file_sha256(p)] for p in files]


def _file_sha256(path: Path) -> str:
    st = path.stat()
    return _hash_file(str(path.resolve()), st.st_size, st.st_mtime_ns)


@cache
def _hash_file(path: str, size: int, mtime_ns: int) -> str:  # size and mtime: a rewritten file hashes again
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def find_kept(key: dict[str, Any], folders: Iterable[Path]) -> Path | None:
    """The first folder whose recorded key equals `key` and whose results are all there."""
    for folder in folders:
        try:
            recorded = json.loads((folder / KEY_FILE).read_text())
        except (OSError, ValueError):
            continue
        if recorded == key and (folder / "results.json").is_file():
            return folder
    return None


def load_kept(folder: Path, label: str, into: Path) -> dict[str, Any]:
    """A kept model's results as `simple_evaluate` returned them (samples included), its files copied
    into `into` (this run's folder for the model) when they were found elsewhere."""
    results = json.loads((folder / "results.json").read_text())
    samples = {}
    for path in sorted(folder.glob("samples_*.jsonl")):
        with path.open() as fh:
            samples[path.stem.removeprefix("samples_")] = [json.loads(line) for line in fh if line.strip()]
    if folder.resolve() != into.resolve():
        into.mkdir(parents=True, exist_ok=True)
        for path in folder.glob("samples_*.jsonl"):
            shutil.copyfile(path, into / path.name)
        results.setdefault("config", {})["model"] = label
        (into / "results.json").write_text(json.dumps(results, indent=2))
        shutil.copyfile(folder / KEY_FILE, into / KEY_FILE)
    results["samples"] = samples
    log.warning("%s: results kept from %s (same weights, tasks, options and code), not evaluated again", label, folder)
    return results


def write_key(folder: Path, key: dict[str, Any]) -> Path:
    """Written after the model's results and samples: its presence says they are complete."""
    path = folder / KEY_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(key, indent=1))
    tmp.replace(path)
    return path


def forget(folder: Path) -> None:
    """Before a model runs into its folder: a key left from another run no longer describes it."""
    (folder / KEY_FILE).unlink(missing_ok=True)


def _source(path: Path) -> bool:
    """A task file as written (not the bytecode Python leaves beside it when lm-eval imports utils.py)."""
    return path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"


def _digest(paths: Iterable[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.name.encode() + b"\0" + hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


@cache
def _code_digest() -> str:
    return _digest(sorted(CODE.rglob("*.py")))
