"""The fork server: a pre-started, pre-imported Python that forks one locked-down child per program.

Started by the parent as `python -I -c BOOT ROOT CONFIG` with a clean environment (see
`client.py`). At start it imports the preload modules, tries seccomp and Landlock in throwaway
children (`probe.py`), gives up root unless both hold, enters its namespaces, builds the Landlock
ruleset, runs a self-test program and says hello with what it got. Then it
serves requests one at a time until its stdin closes. A program costs one fork and about 2.5 ms of
CPU all told (README.md), against 20-40 ms to start a Python, because everything is imported once.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import site
import sys
import sysconfig
import tempfile
import traceback

from toolkit.sandbox import landlock, linux, namespaces, probe, protocol, supervise
from toolkit.sandbox.child import Setup, prepare_server_state

BOOT = "import sys; sys.path.insert(0, sys.argv[1]); from toolkit.sandbox.server import main; main(sys.argv[2])"
# What a program may read besides the Python installation: shared libraries, the loader's
# cache, time zones. Not /etc as a whole (passwd, the hostname, ssh and app configs) nor /proc.
_SYSTEM_READ = ("/usr", "/lib", "/lib64", "/lib32", "/etc/ld.so.cache", "/etc/localtime")
_DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")
PROBE = "import math\nans = math.factorial(5)"


def _preload(names: list[str]) -> tuple[list[str], list[str]]:
    done, failed = [], []
    for name in names:
        try:
            importlib.import_module(name)
            done.append(name)
        except Exception as exc:  # a missing optional module is not an error
            failed.append(f"{name} ({type(exc).__name__})")
    return done, failed


def _python_dirs() -> list[str]:
    """The installation's directories: prefixes (a venv and its base) and site-packages."""
    dirs = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    dirs.update(p for key, p in sysconfig.get_paths().items() if key in ("stdlib", "platstdlib", "purelib", "platlib"))
    dirs.update(site.getsitepackages())
    return sorted(d for d in dirs if d and os.path.isdir(d))


class ForkServer:
    def __init__(self, config: dict) -> None:
        disable = set(config.get("disable", ()))
        self.preloaded, self.preload_failed = _preload(config.get("preload", []))
        self.python_dirs = _python_dirs()  # now, while the installation is surely readable (before nobody)
        self.problems: dict[str, str] = {}
        seccomp_filter, problem = probe.seccomp_filter("seccomp" in disable)
        if problem:
            self.problems["seccomp"] = problem
        elif not seccomp_filter.notify:
            self.problems["seccomp notifications"] = ("the kernel refused a user-notification listener (Linux >= 5.0): calls"
                                                      " are refused but not counted, so escape attempts go unseen")  # fmt: skip
        landlock_problem = probe.landlock_problem("landlock" in disable)
        if landlock_problem:
            self.problems["landlock"] = landlock_problem
        # Root stays root only while both of these contain it (see namespaces.py).
        contained = seccomp_filter is not None and not landlock_problem
        self.as_nobody = namespaces.drop_root() if linux.IS_LINUX and not contained else False
        if "namespaces" in disable:
            self.ns = namespaces.Namespaces(problem="disabled")
        else:
            self.ns = namespaces.enter(config.get("disk_mb", 16), keep=self.python_dirs)
        if not self.ns.net:
            self.problems["network namespace"] = self.ns.problem
        elif not self.ns.mount:
            self.problems["private /tmp"] = self.ns.problem
        caps_problem = namespaces.drop_capabilities()
        if caps_problem:
            self.problems["capabilities"] = caps_problem
        self.workroot = "/tmp" if self.ns.mount else tempfile.mkdtemp(prefix="hubtool-sandbox-")
        # The Python directories bound back into the private /tmp (their top-level entries) stay.
        self._keep = {os.path.join("/tmp", p[len("/tmp/") :].split("/")[0]) for p in self.ns.kept}
        os.chmod(self.workroot, 0o700)
        # One directory for every program, emptied in between: Landlock rules hold inodes, so the
        # prebuilt ruleset stays valid only while this directory is never replaced.
        self.workdir = os.path.join(self.workroot, "run")
        os.mkdir(self.workdir, 0o700)
        self.ruleset = None if landlock_problem else self._landlock()
        if self.ruleset is None and contained and os.geteuid() == 0:  # fail closed, never root uncontained
            raise RuntimeError(f"Landlock passed its probe but the ruleset failed ({self.problems['landlock']})")
        if linux.IS_LINUX:
            linux.prctl(linux.PR_SET_DUMPABLE, 0)  # children cannot ptrace or read our /proc files
        self.setup = Setup(
            server_pid=os.getpid(),
            baseline_bytes=linux.address_space(),
            ruleset=self.ruleset,
            seccomp=seccomp_filter,
        )
        prepare_server_state({"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}, self.workdir)

    def _landlock(self) -> landlock.Ruleset | None:
        try:
            return landlock.Ruleset(self.python_dirs + list(_SYSTEM_READ), [self.workdir], _DEVICES)
        except OSError as exc:
            self.problems["landlock"] = exc.strerror or str(exc)
            return None

    @property
    def isolation(self) -> str:
        if self.setup.seccomp is None:
            return "minimal"
        return "full" if self.ruleset is not None and self.ns.net else "partial"

    def mechanisms(self) -> dict:
        return {
            "seccomp": self.setup.seccomp is not None,
            "denials_observed": self.setup.seccomp is not None and self.setup.seccomp.notify,
            "landlock_abi": self.ruleset.abi if self.ruleset else 0,
            "user_namespace": self.ns.user,
            "network_namespace": self.ns.net,
            "private_tmp": self.ns.mount,
            "ipc_namespace": self.ns.ipc,
            "uid": os.getuid(),
            "root_dropped_to_nobody": self.as_nobody,
        }

    def run(self, request: dict, parent_fd: int) -> dict:
        try:
            return supervise.run(request["code"], request["limits"], self.workdir, self.setup, parent_fd)
        finally:
            self._wipe()

    def _wipe(self) -> None:
        """Empty the work directory (and, for a program that ran without Landlock, anything it put
        beside it): the next program starts from nothing the last one left."""
        os.chmod(self.workdir, 0o700)
        for parent in (self.workdir, self.workroot):
            for entry in os.scandir(parent):
                if entry.path == self.workdir or entry.path in self._keep:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    _rmtree(entry.path)
                else:
                    os.unlink(entry.path)

    def hello(self, probe: dict) -> dict:
        ok = probe.get("outcome") == "ok" and probe.get("value") == "120"
        return {
            "ready": True,
            "pid": os.getpid(),
            "isolation": self.isolation,
            "mechanisms": self.mechanisms(),
            "missing": self.problems,
            "preloaded": self.preloaded,
            "preload_failed": self.preload_failed,
            "workroot": None if self.ns.mount else self.workroot,
            "probe_error": None if ok else f"{probe.get('outcome')}: {probe.get('error')}",
        }

    def close(self) -> None:
        if not self.ns.mount:  # a private tmpfs vanishes by itself
            shutil.rmtree(self.workroot, ignore_errors=True)


def _rmtree(path: str) -> None:
    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=_unlock_and_retry)
    else:
        shutil.rmtree(path, onerror=_unlock_and_retry)


def _unlock_and_retry(func, path, _exc) -> None:
    # Only reachable without seccomp (which denies chmod): a program left a directory unreadable.
    os.chmod(os.path.dirname(path), 0o700)
    if os.path.isdir(path):
        os.chmod(path, 0o700)
    func(path)


def main(config_json: str) -> None:
    """The server's life: set up, say hello, serve until the parent closes stdin."""
    sys.dont_write_bytecode = True
    # The protocol moves off fds 0/1, so nothing a preloaded module prints can corrupt it.
    inp, out = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    os.close(devnull)
    if sys.path and sys.path[0] == sys.argv[1]:
        del sys.path[0]  # the repository is not for programs to import (or, under Landlock, read)
    server = ForkServer(json.loads(config_json))
    try:
        probe_limits = {"wall_s": 30, "cpu_s": 10, "memory_mb": 256, "output_chars": 1000, "answer_chars": 100,
                        "disk_mb": 1}  # fmt: skip
        probe = server.run({"code": PROBE, "limits": probe_limits}, inp)
        protocol.send(out, server.hello(probe))
        while True:
            try:
                request = protocol.receive(inp)
            except protocol.PeerGone:
                break
            try:
                reply = server.run(request, inp)
            except supervise.ParentGone:
                break
            except Exception as exc:  # a bug here: say so, but keep serving
                traceback.print_exc()
                reply = {"outcome": "killed", "error": f"sandbox server error: {type(exc).__name__}: {exc}"}
            protocol.send(out, reply)
    finally:
        server.close()
