"""`--scorer-mode expected`: a score as the probability-weighted mean over the score tokens.

IDEA-MCTS scores quality and complexity with trained scorer models that, as Deita's scorers do,
read no generated text: the prompt ends where the score would be written, and the score is

    sum over v in [low, high] of  v * softmax(logits[token(v)])

the softmax taken over the score tokens only. Here any local causal LM the transformers backend
loads can be that scorer (a trained Deita-style scorer, or an instruct model on the rubric
prompts); the prompt is the rubric template in the model's chat template, followed by "Score:".
So can a model behind an OpenAI-compatible server that gives `top_logprobs` and continues a reply
the request begins (llama.cpp's llama-server): the same sum over the score tokens among the 20
likeliest next tokens after the rubric and the begun reply (`ServedExpectedScorer`).
No sampling, and the same model gives the same scores again: what was read (the score tokens'
logits, or the server's top log-probabilities) goes to the call cache as a reading of its own
(`Session.reading`), so a build re-run or resumed from its cache asks the scorer nothing it read before.
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from toolkit.errors import UserError

ANSWER_PREFIXES = ("Score: ", "Score:")  # where the score token would come next (tokenizers differ)
# (kind, what it is read from, how to read it) -> the reading: `Session.reading` caches it
Reader = Callable[[str, dict, Callable[[], Awaitable[Any]]], Awaitable[Any]]


async def read_now(kind: str, payload: dict, read: Callable[[], Awaitable[Any]]) -> Any:
    """A `Reader` without a cache."""
    return await read()


def expected_value(logits: Sequence[float], values: Sequence[int]) -> float:
    """sum(v * p(v)) with p the softmax of the score tokens' logits (Deita's `infer_score`)."""
    top = max(logits)
    weights = [math.exp(x - top) for x in logits]
    total = sum(weights)
    return sum(v * w / total for v, w in zip(values, weights))


def score_tokens(tokenizer: Any, values: Sequence[int]) -> tuple[str, list[int]]:
    """The answer prefix after which each value is one token, and those tokens' ids.

    Tokenizers differ: SmolLM2's writes "Score: 3" as Score, :, Ġ, 3 (the prefix is "Score: ", the
    token "3"); one that merges the space into the digit needs the prefix "Score:" and the token " 3"."""
    for prefix in ANSWER_PREFIXES:
        head = tokenizer(prefix, add_special_tokens=False).input_ids
        ids = []
        for v in values:
            full = tokenizer(prefix + str(v), add_special_tokens=False).input_ids
            if full[: len(head)] != head or len(full) != len(head) + 1:
                break
            ids.append(full[-1])
        if len(ids) == len(values) and len(set(ids)) == len(ids):
            return prefix, ids
    raise UserError(f"--scorer-mode expected: the scorer's tokenizer does not write each score "
                    f"{values[0]}-{values[-1]} as one token; use a range of single digits (e.g. 1-6)")  # fmt: skip


class ExpectedScorer:
    """Expected scores from a transformers backend: its `tokenizer` writes the input, its `lm` is read
    for what the reader does not hold (a merge's stand-in has the tokenizer only, and every reading
    in its cache)."""

    def __init__(self, backend: Any, low: int, high: int, reader: Reader = read_now) -> None:
        if not hasattr(backend, "tokenizer"):
            raise UserError(f"--scorer-mode expected needs a local causal LM (transformers:MODEL); "
                            f"the scorer is {getattr(backend, 'identity', backend)!r}")  # fmt: skip
        self.lm, self.tokenizer = getattr(backend, "lm", None), backend.tokenizer
        self.identity = getattr(backend, "identity", "the scorer")
        self.values = list(range(low, high + 1))
        self.prefix, self.ids = score_tokens(self.tokenizer, self.values)
        self._lock = threading.Lock()  # one forward pass at a time from this scorer
        self.reader = reader

    def text(self, prompt: str) -> str:
        """The scorer's input: the rubric prompt as a user turn, the reply begun up to the score."""
        chat = [{"role": "user", "content": prompt}]
        return self.tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True) + self.prefix

    def logits(self, text: str) -> list[float]:
        """The score tokens' logits as the next token after `text`."""
        import torch

        if self.lm is None:
            raise UserError(f"{self.identity}: a score's logits are in no call cache and no model is loaded to read "
                            "them (a merge reads only what its shards cached)")  # fmt: skip
        ids = self.tokenizer(text, add_special_tokens=False, return_tensors="pt").to(self.lm.device)
        with self._lock, torch.no_grad():
            logits = self.lm(**ids).logits[0, -1]
        return logits[self.ids].float().tolist()

    async def score(self, prompt: str) -> float:
        text = self.text(prompt)
        logits = await self.reader("score-token-logits", {"text": text, "tokens": self.ids},
                                   lambda: asyncio.to_thread(self.logits, text))  # fmt: skip
        return expected_value(logits, self.values)


class ServedExpectedScorer:
    """Expected scores from a served model (an openai backend's `next_token_logprobs`): the reply is
    begun with "Score: " (or "Score:", where the server's tokenizer puts the space in the digit's
    token), and the score tokens among the likeliest next tokens are weighed. The begun reply is
    chosen once, on `probe` (default: the first prompt scored): the one after which the score tokens
    hold most of the probability. A fixed probe makes the choice the same in every process of a
    sharded build, whichever prompt reaches each first, so a merge finds every reading in the cache."""

    TOP = 20  # OpenAI's and vLLM's most; llama.cpp gives as many

    def __init__(self, backend: Any, low: int, high: int, reader: Reader = read_now, probe: str | None = None) -> None:
        if not hasattr(backend, "next_token_logprobs"):
            raise UserError(f"--scorer-mode expected reads the scorer's logits or log-probabilities: give "
                            f"transformers:MODEL or openai:MODEL@URL, not {getattr(backend, 'identity', backend)!r}")  # fmt: skip
        self.backend = backend
        self.values = list(range(low, high + 1))
        self.prefix: str | None = None
        self._choosing = asyncio.Lock()
        self.reader = reader
        self.probe = probe

    async def _weights(self, prompt: str, prefix: str) -> list[float]:
        """Each score's probability as the next token after `prefix` (0 outside the top tokens)."""
        messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": prefix}]
        top = await self.reader("next-token-logprobs", {"messages": messages, "top": self.TOP},
                                lambda: self.backend.next_token_logprobs(messages, self.TOP))  # fmt: skip
        weights = dict.fromkeys(self.values, 0.0)
        for token, logprob in top.items():  # "5" or " 5", as the tokenizer writes it
            value = int(token.strip()) if token.strip().isdigit() else None
            if value in weights:
                weights[value] += math.exp(logprob)
        return [weights[v] for v in self.values]

    async def score(self, prompt: str) -> float | None:
        """The expected score, or None where no score token is among the likeliest (unreadable)."""
        if self.prefix is None:
            async with self._choosing:
                if self.prefix is None:
                    masses = {p: sum(await self._weights(self.probe or prompt, p)) for p in ANSWER_PREFIXES}
                    self.prefix = max(masses, key=lambda p: masses[p])
                    if masses[self.prefix] < 0.5:
                        raise UserError(
                            f"--scorer-mode expected: after a reply begun with {self.prefix!r} the scorer puts "
                            f"{masses[self.prefix]:.0%} of its probability on the score tokens; its server may not "
                            "continue a begun reply (llama.cpp's llama-server does)")  # fmt: skip
        weights = await self._weights(prompt, self.prefix)
        total = sum(weights)
        return sum(v * w for v, w in zip(self.values, weights)) / total if total > 0 else None
