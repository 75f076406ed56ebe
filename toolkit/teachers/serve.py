"""A teacher that starts itself: a GGUF file named on the Hub, served locally for one run.

    with served_teacher({"gguf": "hf:Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"}) as t:
        build(..., teacher=t.spec)   # openai:qwen2.5-coder-1.5b-instruct-q4_k_m@http://127.0.0.1:PORT/v1
    # the server is gone here, also after an error, Ctrl-C, SIGTERM or SIGKILL of this process

Backends: `llamacpp` (the default: `python -m llama_cpp.server`, from the optional extra
`hubtool[llamacpp]`, run by `python:` / `$HUBTOOL_LLAMA_PYTHON` or this interpreter; one request at
a time), `llama-server` (llama.cpp's own server binary, `binary:` / `$HUBTOOL_LLAMA_SERVER` or on the
PATH; `parallel:` slots decode that many requests in one batch) and `transformers` (no server: the
GGUF de-quantised once into a checkpoint, `transformers:FILE.gguf`). bench/teacher_serving.py
measures them side by side.

Where the file comes from, first match wins: `path:` (a local file), `$HUBTOOL_GGUF_DIR/FILE` (a
folder of GGUF files, for offline machines), then the Hub via `hf_hub_download` (offline: the HF
cache). The file's sha256 is the teacher's identity (`ServedTeacher.sha256`, `served_weights(url)`),
computed once per path, size and mtime.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import shutil
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

from toolkit.errors import UserError, did_you_mean
from toolkit.teachers.server_process import running

log = logging.getLogger(__name__)

PYTHON_ENV = "HUBTOOL_LLAMA_PYTHON"  # the Python that has llama-cpp-python[server] installed
SERVER_ENV = "HUBTOOL_LLAMA_SERVER"  # llama.cpp's llama-server binary, where it is not on the PATH
BACKENDS = ("llamacpp", "llama-server", "transformers")
GGUF_DIR_ENV = "HUBTOOL_GGUF_DIR"  # a local folder of .gguf files, looked up before the Hub


@dataclass(frozen=True)
class TeacherServer:
    """What an experiment's `teacher_server:` mapping (or a bare `hf:...` / path string) says."""

    gguf: str  # hf:ORG/NAME/FILE.gguf, or a local .gguf path
    path: str | None = None  # a local copy of that file; wins over the Hub (offline machines)
    revision: str | None = None  # of the Hub repo
    alias: str | None = None  # the model name it is served as; default: the file's stem
    backend: Literal["llamacpp", "llama-server", "transformers"] = "llamacpp"
    threads: int | None = None  # llama.cpp's n_threads; default: every CPU
    n_ctx: int = 4096  # prompt + completion tokens per request
    parallel: int = 1  # llama-server's slots: requests decoded together (give the builds as much concurrency)
    python: str | None = None  # default: $HUBTOOL_LLAMA_PYTHON, else this interpreter
    binary: str | None = None  # llama-server's path; default: $HUBTOOL_LLAMA_SERVER, else `llama-server` on the PATH
    port: int | None = None  # default: a stable port per file when free (see `stable_port`)
    startup_timeout: float = 600.0  # seconds until /v1/models must answer

    @classmethod
    def from_config(cls, value: TeacherServer | Mapping[str, Any] | str) -> TeacherServer:
        if isinstance(value, TeacherServer):
            return value
        if isinstance(value, str):
            value = {"gguf": value}
        if not isinstance(value, Mapping) or not value.get("gguf"):
            raise UserError("teacher_server needs `gguf: hf:ORG/NAME/FILE.gguf` (or a local .gguf path)")
        known = [f.name for f in fields(cls)]
        for key in value:
            if key not in known:
                raise UserError(f"teacher_server: unknown key {key!r}{did_you_mean(str(key), known)}; "
                                f"known: {', '.join(known)}")  # fmt: skip
        backend = value.get("backend", "llamacpp")
        if backend not in BACKENDS:
            raise UserError(f"teacher_server: backend {backend!r} is not one of {', '.join(BACKENDS)}")
        parallel = value.get("parallel", 1)
        if not isinstance(parallel, int) or isinstance(parallel, bool) or parallel < 1:
            raise UserError(f"teacher_server: parallel must be a whole number of slots >= 1, not {parallel!r}")
        if parallel > 1 and backend != "llama-server":
            raise UserError(f"teacher_server: parallel: {parallel} needs backend: llama-server (the {backend} "
                            "backend answers one request at a time)")  # fmt: skip
        return cls(**dict(value))


@dataclass(frozen=True)
class ServedTeacher:
    spec: str  # the teacher spec a build takes: openai:ALIAS@http://127.0.0.1:PORT/v1, or transformers:FILE
    source: str  # the gguf as named (hf:... or a path)
    file: Path
    sha256: str
    pid: int | None = None  # the server's process, None for the transformers backend
    log: Path | None = None

    def __str__(self) -> str:
        return self.spec

    def identity(self) -> dict[str, str]:
        """What names the weights in manifests and cards (no local path: the file by name)."""
        return {"gguf": self.source if self.source.startswith("hf:") else self.file.name,
                "file": self.file.name, "sha256": self.sha256}  # fmt: skip


@contextlib.contextmanager
def served_teacher(spec: TeacherServer | Mapping[str, Any] | str) -> Iterator[ServedTeacher]:
    """Resolve the GGUF, start its server (llamacpp) and yield the teacher; stop it for sure."""
    server = TeacherServer.from_config(spec)
    gguf = resolve_gguf(server)
    digest = gguf_sha256(gguf)
    if server.backend == "transformers":
        yield ServedTeacher(f"transformers:{gguf}", server.gguf, gguf, digest)
        return

    alias = server.alias or gguf.stem
    if server.backend == "llama-server":
        binary = llama_server_binary(server)
        command = functools.partial(llama_server_command, server, binary, gguf, alias)
    else:
        command = functools.partial(llamacpp_command, server, gguf, alias)
    with running(command, alias=alias, timeout=server.startup_timeout, port=server.port or stable_port(digest),
                 env=_server_env(), name=f"{server.backend}-{alias}", hints=HINTS) as proc:  # fmt: skip
        served = ServedTeacher(f"openai:{alias}@{proc.url}", server.gguf, gguf, digest, proc.pid, proc.log_path)
        _SERVED[proc.url] = served
        slots = f", {server.parallel} slots" if server.parallel > 1 else ""
        log.warning("teacher %s served by %s at %s (pid %d%s)", alias, server.backend, proc.url, proc.pid, slots)
        try:
            yield served
        finally:
            _SERVED.pop(proc.url, None)


class TeacherOnDemand:
    """For a runner of many steps: the server starts when a step first asks for `.spec` (a run whose
    steps are all up to date starts none) and stops when the `with` ends. `.fingerprint` names the
    weights without starting anything: fingerprint a step by it, not by the URL (its port may change).

        with TeacherOnDemand(experiment.teacher_server) as teacher:
            inputs = substitute(spec, {**outputs, "teacher": teacher.fingerprint})   # to decide
            flags = substitute(spec, {**outputs, "teacher": teacher.spec})           # to run
    """

    def __init__(self, spec: TeacherServer | Mapping[str, Any] | str) -> None:
        self.server = TeacherServer.from_config(spec)
        self.served: ServedTeacher | None = None
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> TeacherOnDemand:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()
        self.served = None

    @functools.cached_property
    def fingerprint(self) -> str:
        gguf = resolve_gguf(self.server)
        return f"{self.server.backend}:{self.server.alias or gguf.stem} sha256={gguf_sha256(gguf)}"

    @property
    def spec(self) -> str:
        if self.served is None:
            self.served = self._stack.enter_context(served_teacher(self.server))
        return self.served.spec


def served_weights(base_url: str) -> dict[str, str]:
    """The identity of the weights behind a base URL that hubtool is serving now; {} otherwise.
    For the openai backend: a build against a served teacher records which file it was."""
    served = _SERVED.get(base_url.rstrip("/"))
    return served.identity() if served else {}


_SERVED: dict[str, ServedTeacher] = {}
HINTS = {"No module named 'llama_cpp'": f"install it with pip install 'hubtool[llamacpp]', or set `python:` or "
                                      f"${PYTHON_ENV} to a Python that has llama-cpp-python[server]"}  # fmt: skip


def llamacpp_command(server: TeacherServer, gguf: Path, alias: str, port: int) -> list[str]:
    """llama-cpp-python's OpenAI-compatible server for one file, on 127.0.0.1 only."""
    python = server.python or os.environ.get(PYTHON_ENV) or sys.executable
    threads = server.threads or os.cpu_count() or 1
    return [python, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", alias,
            "--host", "127.0.0.1", "--port", str(port), "--n_threads", str(threads),
            "--n_threads_batch", str(threads), "--n_ctx", str(server.n_ctx)]  # fmt: skip


def llama_server_command(server: TeacherServer, binary: str, gguf: Path, alias: str, port: int) -> list[str]:
    """llama.cpp's own server for one file, on 127.0.0.1 only: `parallel` slots of `n_ctx` tokens each
    (its --ctx-size is shared by the slots), continuous batching, the model's own chat template."""
    threads = server.threads or os.cpu_count() or 1
    return [binary, "--model", str(gguf), "--alias", alias, "--host", "127.0.0.1", "--port", str(port),
            "--threads", str(threads), "--threads-batch", str(threads), "--parallel", str(server.parallel),
            "--ctx-size", str(server.n_ctx * server.parallel), "--jinja", "--no-webui"]  # fmt: skip


def llama_server_binary(server: TeacherServer) -> str:
    """`binary:`, then $HUBTOOL_LLAMA_SERVER, then `llama-server` on the PATH; a one-line error if none."""
    named = server.binary or os.environ.get(SERVER_ENV)
    found = shutil.which(os.path.expanduser(named)) if named else shutil.which("llama-server")
    if not found:
        where = f"{named!r} (from {'binary:' if server.binary else '$' + SERVER_ENV})" if named else "llama-server on the PATH"
        raise UserError(f"teacher_server: backend llama-server, but there is no {where}; install llama.cpp "
                        f"(its release binaries, or `brew install llama.cpp`), or set binary: / ${SERVER_ENV}")  # fmt: skip
    return found


def stable_port(sha256: str) -> int:
    """A port in 20000-29999 fixed by the file's hash: the same teacher gets the same URL run after
    run, so URL-keyed teacher-call caches and experiment fingerprints survive a restart."""
    return 20000 + int(sha256[:8], 16) % 10000


def _server_env() -> dict[str, str]:
    # OpenMP threads that spin-wait steal the cores hubtool and other jobs need on a small machine.
    return {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}


# -- the file ---------------------------------------------------------------------------------------------
def resolve_gguf(server: TeacherServer) -> Path:
    """The local .gguf file: `path:`, then $HUBTOOL_GGUF_DIR, then the Hub (or its cache)."""
    if server.path:
        return _checked(Path(server.path).expanduser(), "path:")
    if not server.gguf.startswith("hf:"):
        return _checked(Path(server.gguf).expanduser(), "gguf:")
    repo, filename = parse_hub_file(server.gguf)
    folder = os.environ.get(GGUF_DIR_ENV)
    if folder and (Path(folder).expanduser() / Path(filename).name).is_file():
        return _checked(Path(folder).expanduser() / Path(filename).name, f"${GGUF_DIR_ENV}")
    return _checked(Path(_download(repo, filename, server.revision)), server.gguf)


def parse_hub_file(spec: str) -> tuple[str, str]:
    """`hf:ORG/NAME/FILE.gguf` -> (ORG/NAME, FILE.gguf); FILE may sit in a folder of the repo."""
    parts = spec.removeprefix("hf:").split("/")
    if len(parts) < 3 or not all(parts) or not parts[-1].endswith(".gguf"):
        raise UserError(f"{spec!r} is not a Hub file; write hf:ORG/NAME/FILE.gguf, e.g. "
                        "hf:Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf")  # fmt: skip
    return "/".join(parts[:2]), "/".join(parts[2:])


def _download(repo: str, filename: str, revision: str | None) -> str:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return hf_hub_download(repo, filename, revision=revision)
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as e:
        cause = " ".join(str(e).split())[:160]
        raise UserError(f"cannot get {filename} from {repo} ({cause}); download it once with "
                        f"`hf download {repo} {filename}`, or give `path:` or ${GGUF_DIR_ENV} "
                        "(a folder that holds the file)") from None  # fmt: skip


def _checked(path: Path, named_by: str) -> Path:
    if not path.is_file():
        raise UserError(f"GGUF file {path} (from {named_by}) does not exist")
    with open(path, "rb") as f:
        if f.read(4) != b"GGUF":
            raise UserError(f"{path} (from {named_by}) is not a GGUF file (no GGUF header)")
    return Path(os.path.abspath(path))  # not resolve(): the HF cache links FILE.gguf to blobs/<hash>


def gguf_sha256(path: str | Path) -> str:
    """The file's sha256, hashed once: remembered under $HUBTOOL_HOME/cache by path, size and mtime."""
    from toolkit.paths import hubtool_home

    path = Path(path).resolve()
    st = path.stat()
    key = f"{path}:{st.st_size}:{st.st_mtime_ns}"
    memo = hubtool_home() / "cache" / "gguf-sha256.json"
    known = _read_json(memo)
    if key in known:
        return known[key]
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    known = {k: v for k, v in _read_json(memo).items() if not k.startswith(f"{path}:")}
    known[key] = h.hexdigest()
    with contextlib.suppress(OSError):  # a read-only home only costs a re-hash next time
        memo.parent.mkdir(parents=True, exist_ok=True)
        tmp = memo.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(known, indent=1))
        os.replace(tmp, memo)
    return known[key]


def _read_json(path: Path) -> dict[str, str]:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}
