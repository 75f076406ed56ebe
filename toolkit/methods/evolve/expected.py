"""`--scorer-mode expected`: a score as the probability-weighted mean over the score tokens.

IDEA-MCTS scores quality and complexity with trained scorer models that, as Deita's scorers do,
read no generated text: the prompt ends where the score would be written, and the score is

    sum over v in [low, high] of  v * softmax(logits[token(v)])

the softmax taken over the score tokens only. Here any local causal LM the transformers backend
loads can be that scorer (a trained Deita-style scorer, or an instruct model on the rubric
prompts); the prompt is the rubric template in the model's chat template, followed by "Score:".
No sampling, so nothing goes through the call cache: the same model gives the same scores again.
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Sequence
from typing import Any

from toolkit.errors import UserError

ANSWER_PREFIXES = ("Score: ", "Score:")  # where the score token would come next (tokenizers differ)


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
    """Expected scores from a loaded transformers backend (its `lm` and `tokenizer`)."""

    def __init__(self, backend: Any, low: int, high: int) -> None:
        if not (hasattr(backend, "lm") and hasattr(backend, "tokenizer")):
            raise UserError(f"--scorer-mode expected needs a local causal LM (transformers:MODEL); "
                            f"the scorer is {getattr(backend, 'identity', backend)!r}")  # fmt: skip
        self.lm, self.tokenizer = backend.lm, backend.tokenizer
        self.values = list(range(low, high + 1))
        self.prefix, self.ids = score_tokens(self.tokenizer, self.values)
        self._lock = threading.Lock()  # one forward pass at a time from this scorer

    def text(self, prompt: str) -> str:
        """The scorer's input: the rubric prompt as a user turn, the reply begun up to the score."""
        chat = [{"role": "user", "content": prompt}]
        return self.tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True) + self.prefix

    def score_sync(self, prompt: str) -> float:
        import torch

        ids = self.tokenizer(self.text(prompt), add_special_tokens=False, return_tensors="pt").to(self.lm.device)
        with self._lock, torch.no_grad():
            logits = self.lm(**ids).logits[0, -1]
        return expected_value(logits[self.ids].float().tolist(), self.values)

    async def score(self, prompt: str) -> float:
        return await asyncio.to_thread(self.score_sync, prompt)
