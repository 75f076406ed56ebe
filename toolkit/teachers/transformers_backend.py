"""Local generation with transformers: batched, left-padded, chat template, n samples per prompt.

Runs on a CPU (the embedded default) or a GPU. Requests are sorted by prompt length and packed
into batches of about `batch_size` sequences, so padding stays small; each request's n samples
are rows of the same batch.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
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
    SamplingParams,
    at_least,
    option,
)
from toolkit.teachers.models import model_revision, resolve_model_path

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class TransformersOptions(BackendOptions):
    batch_size: int | None = option(None, cli=True, help="transformers: sequences per batch.")
    device: str | None = option(None, help="Where the model runs (default: cuda when there is one, else cpu).")
    # float32 and bfloat16 write different tokens: part of the cache key where set.
    dtype: str | None = option(None, identity=True, help="Weights dtype (default auto: float32 on a CPU).")

    def __post_init__(self) -> None:
        at_least(self, "batch_size", 1)


class TransformersTeacher(BatchingTeacher):
    """A model loaded in-process by transformers. A seed gives the same samples again on the same
    machine (`torch.manual_seed` per batch)."""

    backend = "transformers"
    Options = TransformersOptions

    def __init__(self, model: str, *, batch_size: int = 16, device: str | None = None, dtype: str = "auto"):
        import torch
        from transformers import AutoModelForCausalLM

        super().__init__()
        self.options = TransformersOptions(batch_size=batch_size, device=device, dtype=None if dtype == "auto" else dtype)
        self.model = model
        self.revision = model_revision(model)
        self.batch_size = max(1, batch_size)
        self.window = 8 * self.batch_size  # problems in flight: batches stay full, the tail of a dispatch short
        path = resolve_model_path(model)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        try:
            torch_dtype = "auto" if dtype == "auto" and self.device != "cpu" else getattr(torch, dtype, torch.float32)
            base = adapter_base_path(path)
            self.tokenizer = load_tokenizer(path, base)
            self.lm = AutoModelForCausalLM.from_pretrained(base or path, dtype=torch_dtype)
            if base is not None:  # a LoRA output folder: its adapter, folded into the base it names
                from peft import PeftModel

                self.lm = PeftModel.from_pretrained(self.lm, path).merge_and_unload()
            self.lm = self.lm.to(self.device).eval()
        except (OSError, ValueError) as e:  # missing files, an unknown architecture, a broken tokenizer
            raise UserError(f"cannot load model {model!r}: {str(e).strip().splitlines()[0]}") from None
        if self.tokenizer.chat_template is None:
            raise UserError(f"model {model!r} has no chat template; use an instruct/chat model")
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        eos = self.lm.generation_config.eos_token_id
        self._eos = set(eos if isinstance(eos, list) else [eos if eos is not None else self.tokenizer.eos_token_id])
        self._cancelled = threading.Event()  # set by `cancel` (Ctrl-C): decoding stops at the next token

    @classmethod
    def load(cls, model: str, options: BackendOptions) -> TransformersTeacher:
        assert isinstance(options, TransformersOptions)
        given = {"batch_size": options.batch_size, "device": options.device, "dtype": options.dtype}
        teacher = cls(model, **{k: v for k, v in given.items() if v is not None})
        teacher.options = options
        return teacher

    def render(self, request: Request) -> str:
        return self.tokenizer.apply_chat_template(list(request.messages), tokenize=False, add_generation_prompt=True)

    def generate_batch(self, requests: Sequence[Request], on_result: OnResult | None = None) -> list[Result]:
        self._cancelled.clear()
        results: list[Result] = [[] for _ in requests]
        texts = [self.render(r) for r in requests]
        lengths = [len(self.tokenizer(t, add_special_tokens=False).input_ids) for t in texts]
        limit = getattr(self.lm.config, "max_position_embeddings", None)
        fit = []
        for i, length in enumerate(lengths):
            if limit and length >= limit:  # no room for one new token: this call fails, the others run
                results[i] = CallFailure(f"the prompt has {length} tokens; {self.model} reads at most {limit}")
                if on_result:
                    on_result(i, results[i])
            else:
                fit.append(i)
        for batch in self._batches([requests[i] for i in fit], [lengths[i] for i in fit]):
            batch = [fit[k] for k in batch]
            completions = self._generate_batch([texts[i] for i in batch], [requests[i] for i in batch])
            if self._cancelled.is_set():
                break  # cut short: not one of these completions is what the model would have written
            for i, done in zip(batch, completions):
                results[i] = done
                if on_result:
                    on_result(i, done)
        return results

    def cancel_batch(self) -> None:
        self._cancelled.set()

    def _batches(self, requests: Sequence[Request], lengths: list[int]) -> list[list[int]]:
        """Group requests with equal sampling params, shortest prompts first, ~batch_size rows each."""
        order = sorted(range(len(requests)), key=lambda i: (repr(requests[i].params), requests[i].first_sample, lengths[i]))
        batches: list[list[int]] = []
        rows = 0
        for i in order:
            head = requests[batches[-1][0]] if batches else None
            same = head is not None and (head.params, head.first_sample) == (requests[i].params, requests[i].first_sample)
            if not batches or not same or rows + requests[i].n > self.batch_size:
                batches.append([])
                rows = 0
            batches[-1].append(i)
            rows += requests[i].n
        return batches

    def _generate_batch(self, texts: list[str], requests: list[Request]) -> list[list[Completion]]:
        import torch

        params: SamplingParams = requests[0].params
        expanded = [t for t, r in zip(texts, requests) for _ in range(r.n)]
        enc = self.tokenizer(expanded, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
        sample = params.temperature > 0
        kwargs: dict[str, Any] = {"max_new_tokens": params.max_new_tokens, "do_sample": sample}
        if sample:
            kwargs.update(temperature=params.temperature, top_p=params.top_p)
            torch.manual_seed(params.seed + requests[0].first_sample)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        with torch.inference_mode():
            out = self.lm.generate(**enc, **kwargs, pad_token_id=self.tokenizer.pad_token_id,
                                   stopping_criteria=_stop_when(self._cancelled))  # fmt: skip
        new = out[:, enc.input_ids.shape[1] :].tolist()
        prompt_tokens = enc.attention_mask.sum(dim=1).tolist()
        completions = [self._completion(ids, int(p)) for ids, p in zip(new, prompt_tokens)]
        grouped, start = [], 0
        for r in requests:
            grouped.append(completions[start : start + r.n])
            start += r.n
        return grouped

    def _completion(self, ids: list[int], prompt_tokens: int) -> Completion:
        end = next((k for k, t in enumerate(ids) if t in self._eos), None)
        kept = ids if end is None else ids[:end]
        text = self.tokenizer.decode(kept, skip_special_tokens=True).strip()
        return Completion(text, "length" if end is None else "stop", prompt_tokens, len(kept) + (end is not None))


def _stop_when(event: threading.Event) -> Any:
    """Stopping criteria that end every sequence at the next step once `event` is set."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class _Cancelled(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            return torch.full((input_ids.shape[0],), event.is_set(), dtype=torch.bool, device=input_ids.device)

    return StoppingCriteriaList([_Cancelled()])


def adapter_base_path(path: str) -> str | None:
    """For a PEFT adapter folder (adapter_config.json, no config.json): where its base model loads
    from. The base is resolved like any model name, so a Hub id that an embedded model stands in for
    loads offline too."""
    import json
    from pathlib import Path

    folder = Path(path)
    if not (folder / "adapter_config.json").is_file() or (folder / "config.json").is_file():
        return None
    try:
        base = json.loads((folder / "adapter_config.json").read_text()).get("base_model_name_or_path")
    except (OSError, ValueError) as e:
        raise UserError(f"{folder}/adapter_config.json is unreadable ({e})") from None
    if not base:
        raise UserError(f"{folder}/adapter_config.json names no base_model_name_or_path")
    return resolve_model_path(base)


def load_tokenizer(path: str, base: str | None = None) -> Any:
    """The tokenizer this backend uses for the model at `path` (left padding, for batches): the
    folder's own, or for an adapter folder without one its base's (`base`, from adapter_base_path)."""
    from pathlib import Path

    from transformers import AutoTokenizer

    if base is None:
        base = adapter_base_path(path)
    folder = path if base is None or (Path(path) / "tokenizer_config.json").is_file() else base
    return AutoTokenizer.from_pretrained(folder, padding_side="left")
