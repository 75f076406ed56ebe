"""Offline vLLM as a teacher: `LLM.chat` with `SamplingParams(n=k)`, prefix caching, tensor parallel.

GPU only and optional (`pip install 'hubtool[vllm]'`); vLLM is imported inside `load`, so the
rest of the toolkit never needs it. A build keeps `window` problems in flight for it (thousands: vLLM
schedules best when it sees the whole work), and their waiting requests arrive as one `generate_batch` call.
They go to vLLM in chunks of `chunk_size` (default 2048): vLLM schedules a whole chunk at once
(continuous batching inside it), and `on_result` fires for every request of a chunk as soon as the
chunk ends, so a killed build loses at most one chunk of calls.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolkit.errors import UserError
from toolkit.teachers.base import (
    BackendOptions,
    BatchingTeacher,
    CallFailure,
    Completion,
    OnResult,
    Request,
    Result,
    at_least,
    option,
)
from toolkit.teachers.models import model_revision, resolve_model_path

log = logging.getLogger(__name__)

INSTALL_HINT = "on a GPU machine: pip install 'hubtool[vllm]'"


def hub_commit(model: str, revision: str | None = None) -> str:
    """The commit hash a Hub id resolves to (the local HF cache first, then the Hub), or ''."""
    if "/" not in model or Path(model).expanduser().exists():
        return ""
    from huggingface_hub import HfApi, snapshot_download

    # A revision is provenance, not a reason to stop a build: any failure just leaves it empty.
    try:
        local = Path(
            snapshot_download(model, revision=revision, local_files_only=True, allow_patterns=["config.json"])
        )
        if local.parent.name == "snapshots":
            return local.name
    except Exception as e:
        log.debug("%s not in the local HF cache: %s", model, e)
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return ""
    try:
        return HfApi().model_info(model, revision=revision).sha or ""
    except Exception as e:
        log.info("no commit hash for %s: %s", model, e)
        return ""


def to_completions(output: Any) -> list[Completion]:
    """A vLLM RequestOutput -> Completions with exact token counts."""
    prompt_tokens = len(output.prompt_token_ids or [])
    return [
        Completion(o.text, o.finish_reason or "unknown", prompt_tokens, len(o.token_ids))
        for o in output.outputs
    ]


@dataclass(frozen=True, kw_only=True)
class VLLMOptions(BackendOptions):
    tensor_parallel_size: int | None = option(None, cli=True, help="vllm: GPUs per model.")
    gpu_memory_utilization: float | None = option(None, help="Share of GPU memory vLLM may take (vLLM's default).")
    max_model_len: int | None = option(None, help="Longest prompt + completion, in tokens (vLLM's default).")
    enable_prefix_caching: bool = option(True, help="Reuse the KV cache of shared prompt prefixes.")
    dtype: str | None = option(None, identity=True, help="Weights dtype (vLLM's default: the model's).")
    revision: str | None = option(None, help="Hub revision of the model (branch, tag or commit); its commit is the cache revision.")
    chunk_size: int | None = option(None, help="Requests per LLM.chat call (default 2048).")

    def __post_init__(self) -> None:
        for name in ("tensor_parallel_size", "max_model_len", "chunk_size"):
            at_least(self, name, 1)


class VLLMTeacher(BatchingTeacher):
    """A model loaded in-process by vLLM; a seed gives the same samples again (vLLM's per-request seed)."""

    backend = "vllm"
    Options = VLLMOptions
    window = 16384  # problems a build keeps in flight: hand vLLM the work at once, not 64 at a time

    def __init__(
        self, model: str, llm: Any, sampling_params_cls: Any, *, revision: str, chunk_size: int
    ) -> None:
        super().__init__()
        self.model = model
        self.revision = revision
        self.llm = llm
        self._sampling_params = sampling_params_cls
        self.chunk_size = max(1, chunk_size)

    @classmethod
    def load(cls, model: str, options: BackendOptions) -> VLLMTeacher:
        """Load `model` (an alias such as smollm2-135m, a local folder, or a Hub id) into vLLM."""
        assert isinstance(options, VLLMOptions)
        try:
            import vllm  # optional and heavy: only when this backend is chosen
        except ImportError as e:
            raise UserError(
                f"the vllm backend needs vLLM, which cannot be imported ({e}); {INSTALL_HINT}"
            ) from None
        path = resolve_model_path(model)
        engine_args: dict[str, Any] = {"enable_prefix_caching": options.enable_prefix_caching}
        optional = {
            "tensor_parallel_size": options.tensor_parallel_size,
            "gpu_memory_utilization": options.gpu_memory_utilization,
            "max_model_len": options.max_model_len,
            "dtype": options.dtype,
            "revision": options.revision,
        }
        engine_args.update({k: v for k, v in optional.items() if v is not None})
        log.info("loading %s into vLLM (%s)", path, engine_args)
        llm = vllm.LLM(model=path, **engine_args)
        rev = model_revision(model) or hub_commit(model, options.revision) or (options.revision or "")
        teacher = cls(model, llm, vllm.SamplingParams, revision=rev, chunk_size=options.chunk_size or 2048)
        teacher.options = options
        return teacher

    def generate_batch(self, requests: Sequence[Request], on_result: OnResult | None = None) -> list[Result]:
        """All samples of a chunk in one `LLM.chat` call; results reported chunk by chunk."""
        results: list[Result] = [[] for _ in requests]
        fit = []
        for i, request in enumerate(requests):
            if too_long := self._too_long(request):  # vLLM refuses the whole chunk for it: this call fails alone
                results[i] = CallFailure(too_long)
                if on_result:
                    on_result(i, results[i])
            else:
                fit.append(i)
        for start in range(0, len(fit), self.chunk_size):
            chunk = fit[start : start + self.chunk_size]
            for i, completions in zip(chunk, self._generate_chunk([requests[i] for i in chunk])):
                results[i] = completions
                if on_result:
                    on_result(i, completions)
        return results

    def _too_long(self, request: Request) -> str:
        """Why the prompt cannot be generated from (longer than the model's context), or ''."""
        limit = getattr(getattr(getattr(self.llm, "llm_engine", None), "model_config", None), "max_model_len", None)
        if not limit:
            return ""
        ids = self.llm.get_tokenizer().apply_chat_template(list(request.messages), add_generation_prompt=True)
        return f"the prompt has {len(ids)} tokens; {self.model} reads at most {limit}" if len(ids) >= limit else ""

    def _generate_chunk(self, requests: Sequence[Request]) -> list[list[Completion]]:
        conversations = [list(r.messages) for r in requests]
        params = [self._params(r) for r in requests]
        outputs = self.llm.chat(conversations, sampling_params=params, use_tqdm=False)
        grouped = []
        for request, output in zip(requests, outputs):
            completions = to_completions(output)
            if len(completions) < request.n:  # greedy: one sample stands for all n (see _params)
                completions = completions[:1] * request.n
            grouped.append(completions)
        return grouped

    def _params(self, request: Request) -> Any:
        p = request.params
        greedy = p.temperature <= 0
        # Greedy samples are identical, and some vLLM versions reject n > 1 without sampling: draw one.
        return self._sampling_params(
            n=1 if greedy else request.n,
            temperature=0.0 if greedy else p.temperature,
            top_p=1.0 if greedy else p.top_p,
            max_tokens=p.max_new_tokens,
            seed=p.seed + request.first_sample,
        )

    def close(self) -> None:
        """Drop the engine so its GPU memory can be reclaimed."""
        import gc

        self.llm = None
        gc.collect()
