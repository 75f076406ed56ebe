"""A small, honest stand-in for the Hugging Face Hub's HTTP API, on 127.0.0.1.

It serves exactly what the real `huggingface_hub` (2.4) and `datasets` (5.2) clients call for
hubtool's push and load-by-name, so those clients run unmodified against it (`HF_ENDPOINT`):

    POST /api/repos/create                              create_repo (409 + the repo url when it exists)
    POST /api/validate-yaml                             create_commit's README check (always valid)
    GET  /api/datasets/ORG/NAME[/revision/REV]          repo_info / dataset_info (sha, siblings, cardData)
    POST /api/datasets/ORG/NAME/preupload/REV           upload modes: always "regular" (+ the remote git oid,
                                                        so unchanged files are skipped as on the Hub)
    POST /api/datasets/ORG/NAME/commit/REV              ndjson commits: header, file (base64), deletedFile
    POST /api/datasets/ORG/NAME/branch/BRANCH           create_branch (from main's head, or startingPoint)
    GET  /api/datasets/ORG/NAME/tree/REV[/PATH]         list_repo_tree (?recursive=1), one page
    HEAD/GET /datasets/ORG/NAME/resolve/REV/PATH        file download (X-Repo-Commit, ETag, Content-Length)

Any other request gets a 404 (e.g. the client's best-effort `GET /api/agent-harnesses`).
Auth as on the Hub: `Authorization: Bearer TOKEN`; writes need a known token whose user owns the
namespace (else 401 / 403); a private repo is invisible (401 RepoNotFound) without such a token.
Errors carry the Hub's `X-Error-Code` / `X-Error-Message` headers, so the client raises its own
typed errors (RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError, ...).
`fail_next(pattern, status)` makes the next matching request fail (429, 500, ...).

Not covered: LFS and Xet uploads (every file takes the "regular" base64 path; the real Hub sends
binary files such as parquet through LFS/Xet, which needs its storage backend), pull requests,
refs listing, paths-info, copies, tags, pagination, gated repos, model/space repos, the
datasets-server (viewer, parquet conversion) and the web UI. State lives in memory only.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit


def git_oid(data: bytes) -> str:
    """The git blob sha1, which the Hub reports as a regular file's oid."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Commit:
    sha: str
    files: dict[str, bytes]
    message: str
    parent: str | None


@dataclass
class Repo:
    repo_id: str
    private: bool
    commits: dict[str, Commit] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)  # branch -> commit sha

    def commit(self, branch: str, files: dict[str, bytes], message: str) -> Commit:
        parent = self.refs.get(branch)
        blob = json.dumps(
            [parent, message, sorted((p, git_oid(d)) for p, d in files.items()), time.time_ns()]
        )
        sha = hashlib.sha1(blob.encode()).hexdigest()
        self.commits[sha] = Commit(sha, files, message, parent)
        self.refs[branch] = sha
        return self.commits[sha]

    def at(self, rev: str) -> Commit | None:
        sha = self.refs.get(rev, rev)
        return self.commits.get(sha)


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, **body) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.body = status, message, code, body


class FakeHub:
    """The Hub's state plus a server thread; use as a context manager."""

    def __init__(self, tokens: dict[str, str] | None = None) -> None:
        self.tokens = dict(tokens or {})  # token -> user name (who may write ORG == user)
        self.repos: dict[str, Repo] = {}
        self.requests: list[tuple[str, str]] = []  # (method, path) as received
        self.commit_headers: list[dict] = []  # each commit's header: summary, description, parentCommit
        self._faults: list[tuple[re.Pattern, int]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakeHub:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def fail_next(self, pattern: str, status: int) -> None:
        """The next request whose 'METHOD PATH' matches `pattern` gets `status`."""
        self._faults.append((re.compile(pattern), status))

    def file(self, repo_id: str, path: str, rev: str = "main") -> bytes:
        return self.repos[repo_id].at(rev).files[path]

    # -- request handling -------------------------------------------------------------------
    def handle(self, method: str, path: str, query: dict, headers, body: bytes) -> tuple[int, dict, bytes]:
        self.requests.append((method, path))
        for i, (pattern, status) in enumerate(self._faults):
            if pattern.search(f"{method} {path}"):
                del self._faults[i]
                raise HubError(status, f"injected failure {status}")
        user = self._user(headers)
        with self._lock:
            for route_method, regex, fn in ROUTES:
                m = re.fullmatch(regex, path)
                if m and method in route_method:
                    return fn(self, user, m, query, body, method)
        raise HubError(404, f"no route {method} {path}")

    def _user(self, headers) -> str | None:
        auth = headers.get("Authorization") or ""
        if not auth.startswith("Bearer "):
            return None
        token = auth.removeprefix("Bearer ")
        if token not in self.tokens:
            raise HubError(401, "Invalid credentials in Authorization header")
        return self.tokens[token]

    def _repo(self, repo_id: str, user: str | None, write: bool = False) -> Repo:
        repo = self.repos.get(repo_id)
        if repo is None or (repo.private and user != repo_id.split("/")[0]):
            raise HubError(401 if user is None else 404, "Repository not found", "RepoNotFound")
        if write:
            self._check_write(repo_id, user)
        return repo

    @staticmethod
    def _check_write(repo_id: str, user: str | None) -> None:
        if user is None:
            raise HubError(401, "You must be authenticated to write")
        if repo_id.split("/")[0] != user:
            raise HubError(403, f"You don't have the rights to write to {repo_id}")

    @staticmethod
    def _commit_at(repo: Repo, rev: str) -> Commit:
        commit = repo.at(rev)
        if commit is None:
            raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        return commit


def _json(data, status: int = 200) -> tuple[int, dict, bytes]:
    return status, {"Content-Type": "application/json"}, json.dumps(data).encode()


def _create(hub: FakeHub, user, m, query, body, method):
    payload = json.loads(body)
    repo_id = f"{payload.get('organization') or user}/{payload['name']}"
    if payload.get("type") != "dataset":
        raise HubError(400, "this stand-in serves dataset repos only")
    hub._check_write(repo_id, user)
    if repo_id in hub.repos:
        raise HubError(409, "You already created this dataset repo", url=f"{hub.endpoint}/datasets/{repo_id}")
    repo = hub.repos[repo_id] = Repo(repo_id, private=payload.get("visibility") == "private")
    repo.commit(
        "main", {".gitattributes": b"*.parquet filter=lfs diff=lfs merge=lfs -text\n"}, "initial commit"
    )
    return _json({"url": f"{hub.endpoint}/datasets/{repo_id}", "name": repo_id})


def _validate_yaml(hub, user, m, query, body, method):
    return _json({"errors": [], "warnings": []})


def _info(hub: FakeHub, user, m, query, body, method):
    repo = hub._repo(m["repo"], user)
    commit = hub._commit_at(repo, unquote(m["rev"] or "main"))
    card = _card_data(commit.files.get("README.md"))
    return _json({
        "_id": hashlib.md5(repo.repo_id.encode()).hexdigest()[:24], "id": repo.repo_id, "author": repo.repo_id.split("/")[0],
        "sha": commit.sha, "private": repo.private, "disabled": False, "gated": False, "downloads": 0, "likes": 0,
        "tags": (card or {}).get("tags", []), "cardData": card, "lastModified": "2024-01-01T00:00:00.000Z",
        "siblings": [{"rfilename": p} for p in sorted(commit.files)],
    })  # fmt: skip


def _card_data(readme: bytes | None) -> dict | None:
    import yaml

    if readme is None:
        return None
    m = re.match(r"^---\n(.*?)\n---\n", readme.decode(), re.S)
    return yaml.safe_load(m.group(1)) if m else None


def _preupload(hub: FakeHub, user, m, query, body, method):
    repo = hub._repo(m["repo"], user, write=True)
    files = repo.at(unquote(m["rev"]))
    existing = files.files if files else {}
    out = [
        {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
         "oid": git_oid(existing[f["path"]]) if f["path"] in existing else None}
        for f in json.loads(body)["files"]
    ]  # fmt: skip
    return _json({"files": out, "commitOid": files.sha if files else None})


def _commit(hub: FakeHub, user, m, query, body, method):
    repo = hub._repo(m["repo"], user, write=True)
    branch = unquote(m["rev"])
    head = hub._commit_at(repo, branch)
    files, header = dict(head.files), {}
    for line in body.decode().splitlines():
        item = json.loads(line)
        key, value = item["key"], item["value"]
        if key == "header":
            header = value
        elif key == "file" and value.get("encoding") == "base64":
            files[value["path"]] = base64.b64decode(value["content"])
        elif key == "deletedFile":
            files.pop(value["path"], None)
        else:
            raise HubError(400, f"this stand-in does not accept {key!r} commit operations")
    if header.get("parentCommit") and header["parentCommit"] != head.sha:
        raise HubError(412, "A commit has happened since. Please refresh and try again.")
    hub.commit_headers.append(header)
    commit = repo.commit(branch, files, header.get("summary", ""))
    url = f"{hub.endpoint}/datasets/{repo.repo_id}/commit/{commit.sha}"
    return _json({"success": True, "commitOid": commit.sha, "commitUrl": url, "pullRequestUrl": None})


def _branch(hub: FakeHub, user, m, query, body, method):
    repo = hub._repo(m["repo"], user, write=True)
    branch = unquote(m["branch"])
    if branch in repo.refs:
        raise HubError(409, f"Reference refs/heads/{branch} already exists")
    start = (json.loads(body) if body else {}).get("startingPoint") or "main"
    repo.refs[branch] = hub._commit_at(repo, start).sha
    return _json({})


def _entry(path: str, data: bytes | None) -> dict:
    if data is None:
        return {"type": "directory", "oid": git_oid(path.encode()), "size": 0, "path": path}
    return {"type": "file", "oid": git_oid(data), "size": len(data), "path": path}


def _tree(hub: FakeHub, user, m, query, body, method):
    repo = hub._repo(m["repo"], user)
    commit = hub._commit_at(repo, unquote(m["rev"]))
    base = unquote(m["path"] or "").strip("/")
    recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
    prefix = f"{base}/" if base else ""
    if base and base in commit.files:
        raise HubError(404, f"{base} is a file", "EntryNotFound")
    entries: dict[str, dict] = {}
    for path, data in sorted(commit.files.items()):
        if not path.startswith(prefix):
            continue
        parts = path[len(prefix) :].split("/")
        for depth in range(1, len(parts)):  # the folders on the way
            if recursive or depth == 1:
                folder = prefix + "/".join(parts[:depth])
                entries.setdefault(folder, _entry(folder, None))
        if recursive or len(parts) == 1:
            entries[path] = _entry(path, data)
    if base and not entries:
        raise HubError(404, f"{base} does not exist", "EntryNotFound")
    return _json(list(entries.values()))


def _resolve(hub: FakeHub, user, m, query, body, method):
    repo = hub._repo(m["repo"], user)
    commit = hub._commit_at(repo, unquote(m["rev"]))
    path = unquote(m["path"])
    if path not in commit.files:
        raise HubError(404, f"{path} does not exist at {commit.sha}", "EntryNotFound")
    data = commit.files[path]
    headers = {
        "X-Repo-Commit": commit.sha,
        "ETag": f'"{git_oid(data)}"',
        "Content-Type": "application/octet-stream",
    }
    return 200, headers, data


_REPO = r"(?P<repo>[^/]+/[^/]+)"
ROUTES = [
    (("POST",), r"/api/repos/create", _create),
    (("POST",), r"/api/validate-yaml", _validate_yaml),
    (("GET",), rf"/api/datasets/{_REPO}(?:/revision/(?P<rev>.+))?", _info),
    (("POST",), rf"/api/datasets/{_REPO}/preupload/(?P<rev>[^/]+)", _preupload),
    (("POST",), rf"/api/datasets/{_REPO}/commit/(?P<rev>[^/]+)", _commit),
    (("POST",), rf"/api/datasets/{_REPO}/branch/(?P<branch>[^/]+)", _branch),
    (("GET",), rf"/api/datasets/{_REPO}/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?", _tree),
    (("GET", "HEAD"), rf"/datasets/{_REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)", _resolve),
]


def _handler_for(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body in separate writes: no 40 ms delayed-ACK stalls

        def _serve(self, method: str) -> None:
            url = urlsplit(self.path)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                status, headers, data = hub.handle(method, url.path, parse_qs(url.query), self.headers, body)
            except HubError as e:
                status, data = e.status, json.dumps({"error": e.message, **e.body}).encode()
                headers = {"Content-Type": "application/json", "X-Error-Message": e.message}
                if e.code:
                    headers["X-Error-Code"] = e.code
            self.send_response(status)
            for key, value in {**headers, "Content-Length": str(len(data))}.items():
                self.send_header(key, value)
            self.end_headers()
            if method != "HEAD":
                self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            self._serve("GET")

        def do_HEAD(self) -> None:  # noqa: N802
            self._serve("HEAD")

        def do_POST(self) -> None:  # noqa: N802
            self._serve("POST")

        def log_message(self, *args) -> None:  # quiet
            pass

    return Handler
