"""A stand-in backend that answers only from the call cache: how `hubtool merge` replays a sharded build.

Merging a sharded build runs the ordinary single-process build over every problem, from a cache
that holds every shard's calls (toolkit.builders.shards). Each session asks the cache first, so a
backend is asked only for a call no shard made; this one has the identity of the backend the
shards used (backend, model, revision, endpoint: the cache key, see toolkit.teachers.cache) and
loads no weights. A call that reaches it goes to `miss`: the failure a shard recorded for it (a
failed call is never cached; the single-process build would have failed it too), or an error
naming the shard whose cache lacks it.
Where the shards' backend had a tokenizer (transformers), it is loaded (no weights): a method may
count tokens with it (mixed's `num_tokens`), and the replay must count them as the shards' build did.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from toolkit.errors import UserError
from toolkit.teachers.base import BackendOptions, CallFailure, OnSample, Request, Result, Teacher


class ReplayTeacher(Teacher):
    """The recorded identity of a backend (`record`: what `identity_record` wrote), answering nothing."""

    def __init__(self, role: str, record: Mapping[str, Any], miss: Callable[[str, Request], CallFailure]) -> None:
        self.role = role
        self.backend = str(record["backend"])
        self.model = str(record["model"])
        self.revision = str(record.get("revision") or "")
        self.endpoint = str(record.get("endpoint") or "")
        self.spec = str(record.get("spec") or f"{self.backend}:{self.model}")  # as the shards' manifests name it
        self.window = int(record.get("window") or Teacher.window)
        self.served = tuple(record.get("served") or ())
        self.weights = dict(record.get("weights") or {})
        # the shards' cache key as their backend computed it (its identity options included)
        self._cache_identity = dict(record.get("cache_identity") or super().cache_identity)
        self._miss = miss  # (role, request) -> the failure a shard recorded, or a UserError
        self.tokenizer = _tokenizer(self.model) if record.get("tokenizer") else None

    @classmethod
    def load(cls, model: str, options: BackendOptions) -> Teacher:
        raise TypeError("a ReplayTeacher is made by `hubtool merge` from a shard's record, not from a spec")

    @property
    def cache_identity(self) -> dict[str, Any]:
        return self._cache_identity

    async def generate(self, request: Request, on_sample: OnSample | None = None) -> Result:
        return self._miss(self.role, request)  # the session asked the cache first: this call no shard made

    async def next_token_logprobs(self, messages: Any, top: int = 20) -> dict[str, float]:
        """A served scorer's reading (evolve's expected scores): the session asked the cache first."""
        raise UserError(f"cannot merge: a {self.role} reading (next-token log-probabilities) is in no shard's call "
                        "cache; the shards ran with other options or code: run them again into a new --out")  # fmt: skip


def identity_record(backend: Teacher) -> dict[str, Any]:
    """What a shard records of a backend after its run, for the merge's `ReplayTeacher`."""
    weights = getattr(backend, "weights", None)  # what a server says of its weights (openai backend)
    return {"backend": backend.backend, "model": backend.model, "revision": backend.revision,
            "endpoint": backend.endpoint, "window": backend.window, "cache_identity": backend.cache_identity,
            "served": sorted(s for s in getattr(backend, "served", ()) if s),
            "weights": dict(weights) if isinstance(weights, dict) else {},
            "tokenizer": getattr(backend, "tokenizer", None) is not None}  # fmt: skip


def _tokenizer(model: str) -> Any:
    """The tokenizer the transformers backend loads for `model`, without the weights."""
    from toolkit.teachers.models import resolve_model_path
    from toolkit.teachers.transformers_backend import load_tokenizer  # imports transformers: only here

    return load_tokenizer(resolve_model_path(model))
