"""The Hugging Face Hub side: one-commit pushes and Hub errors as one-line UserErrors.

The token comes from huggingface_hub's own lookup (HF_TOKEN, then the `hf auth login` file); it
is handed to the client and never printed, logged, or written to a card or manifest.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from toolkit.cards import public_manifest_json, render_card
from toolkit.errors import UserError
from toolkit.redact import redact, remember
from toolkit.rundir import MANIFEST, data_file

if TYPE_CHECKING:  # the type only: the method is the caller's (publishing sits below the methods)
    from toolkit.builders.method import Method

log = logging.getLogger(__name__)


def hub_offline() -> bool:
    from huggingface_hub import constants  # huggingface_hub loads its HTTP client on use (~75 ms)

    return bool(constants.HF_HUB_OFFLINE)


def endpoint() -> str:
    from huggingface_hub import constants  # huggingface_hub loads its HTTP client on use (~75 ms)

    return constants.ENDPOINT


def require_token() -> str:
    from huggingface_hub import get_token  # the same: only a push needs it

    if hub_offline():
        raise UserError("the Hub is off (HF_HUB_OFFLINE=1); unset HF_HUB_OFFLINE to push with --hub")
    token = get_token()
    if not token:
        raise UserError(
            "no Hugging Face token; set HF_TOKEN or run `hf auth login` (the token needs write access)"
        )
    remember(token, "your Hugging Face token")  # masked in everything written from now on
    return token


@contextlib.contextmanager
def hub_errors(
    action: str, repo_id: str | None = None, passthrough: tuple[type[Exception], ...] = ()
) -> Iterator[None]:
    """Turn what the Hub client raises into one-line UserErrors (except `passthrough`)."""
    # only when a Hub call is made (huggingface_hub loads its HTTP client on use)
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled, RepositoryNotFoundError

    try:
        yield
    except passthrough:
        raise
    except OfflineModeIsEnabled:
        raise UserError(f"{action}: the Hub is off (HF_HUB_OFFLINE=1); unset HF_HUB_OFFLINE") from None
    except RepositoryNotFoundError:
        raise UserError(f"{action}: {repo_id} not found on the Hub, or the token cannot see it") from None
    except HfHubHTTPError as e:
        status = e.response.status_code if e.response is not None else None
        raise UserError(f"{action}: {_explain(status, repo_id, e)}") from None
    except _network_errors() as e:
        raise UserError(f"{action}: cannot reach the Hub at {endpoint()} ({type(e).__name__}); check the network "
                        "or HF_ENDPOINT, then try again") from None  # fmt: skip


def _explain(status: int | None, repo_id: str | None, error: Exception) -> str:
    if status == 401:
        return "the Hub rejected the token (401 Unauthorized); set a valid HF_TOKEN or run `hf auth login`"
    if status == 403:
        return f"the token may not write to {repo_id} (403 Forbidden); use a token with write access to that namespace"
    if status == 412:
        return f"{repo_id} changed on the Hub during the push (412 Precondition Failed); push again"
    if status == 429:
        return "the Hub is rate-limiting requests (429 Too Many Requests); wait a few minutes and try again"
    if status is not None and status >= 500:
        return f"the Hub failed ({status}); try again later"
    message = (getattr(error, "server_message", None) or str(error)).strip().splitlines()
    return f"the Hub answered {status}: {message[0] if message else 'no message'}"


def _network_errors() -> tuple[type[Exception], ...]:
    """Transport errors of whichever HTTP client huggingface_hub uses, plus the builtin ones."""
    errors: list[type[Exception]] = [ConnectionError, TimeoutError]
    for module in ("httpx2", "httpx", "requests"):
        with contextlib.suppress(ImportError, AttributeError):
            mod = importlib.import_module(module)
            errors.append(getattr(mod, "TransportError", None) or mod.ConnectionError)
    return tuple(errors)


def push_to_hub(run_dir: Path, repo_id: str, method: Method | None, *, private: bool, revision: str | None,
                license: str | None, message: str, description: str) -> tuple[str, bool]:  # fmt: skip
    """Create the repo (and branch) if missing and upload data, card and manifest in one commit.

    The card already on the Hub is merged (its foreign metadata kept), and the commit names the
    parent it was merged against, so a concurrent change fails instead of being overwritten.
    Returns (commit sha, whether anything changed)."""
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi  # only a Hub push

    token = require_token()
    manifest = published_manifest(run_dir)  # the token is masked too: require_token remembers it
    api = HfApi(token=token)
    branch = revision or "main"
    with hub_errors(f"pushing to {repo_id}", repo_id):
        api.create_repo(repo_id, repo_type="dataset", private=True if private else None, exist_ok=True)
        if branch != "main":
            api.create_branch(repo_id, repo_type="dataset", branch=branch, exist_ok=True)
        parent = api.dataset_info(repo_id, revision=branch).sha
        card = render_card(
            run_dir, method, repo_id=repo_id, license=license,
            existing=_hub_card(api, repo_id, parent),
        )
        data = data_file(run_dir)
        rel = data.relative_to(run_dir).as_posix()
        stale = [f for f in api.list_repo_files(repo_id, repo_type="dataset", revision=parent)
                 if f.startswith("data/train-") and f.endswith(".parquet") and f != rel]  # fmt: skip
        operations = [
            *(CommitOperationDelete(f) for f in stale),  # an earlier build's data, no longer in the card
            CommitOperationAdd(rel, str(data)),
            CommitOperationAdd("README.md", card.encode()),
            CommitOperationAdd("manifest.json", manifest),
        ]
        log.info(
            "committing %d files to %s (branch %s, parent %s)", len(operations), repo_id, branch, parent[:12]
        )
        info = api.create_commit(repo_id, operations, commit_message=message, commit_description=description,
                                 repo_type="dataset", revision=branch, parent_commit=parent)  # fmt: skip
    return info.oid, info.oid != parent


def published_manifest(run_dir: Path) -> bytes:
    """manifest.json as it leaves the machine: credentials masked, also in one written by an
    older hubtool that kept them, and no path of this machine (toolkit.public_paths)."""
    return redact(public_manifest_json((run_dir / MANIFEST).read_text(encoding="utf-8"), run_dir)).encode()


def _hub_card(api, repo_id: str, commit: str) -> str | None:
    from huggingface_hub.errors import EntryNotFoundError  # only a Hub push

    try:
        path = api.hf_hub_download(repo_id, "README.md", repo_type="dataset", revision=commit)
    except EntryNotFoundError:
        return None
    return Path(path).read_text(encoding="utf-8")
