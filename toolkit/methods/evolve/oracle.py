"""The evolver and the scorer as the search sees them (`search.Oracle`): an evolution of an instruction
by one action, and its scores (quality, complexity, diversity), each a call on the build's cached
sessions. The scorer writes its scores (`--scorer-mode rubric`) or they are read from its logits
(`expected`, `expected.py`); the diversity is the intent tags it lists, in either mode."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from toolkit import prompts
from toolkit.builders.method import Work
from toolkit.builders.rows import user
from toolkit.methods.evolve import search as S
from toolkit.methods.evolve import tree as T
from toolkit.methods.evolve.actions import Action
from toolkit.methods.evolve.expected import ExpectedScorer, ServedExpectedScorer
from toolkit.methods.evolve.scoring import (
    clean_evolution,
    diversity_score,
    parse_score,
    prompt_examples,
    read_tags,
)
from toolkit.teachers.base import CallFailure, Request, SamplingParams

if TYPE_CHECKING:
    from toolkit.methods.evolve import EvolveConfig

PROMPT_DIRS = (Path(__file__).parent / "prompts",)  # the method's templates, looked up after toolkit/prompts/
PROBE = "Say hi."  # the instruction a served scorer's begun reply is chosen on (ServedExpectedScorer)


class ModelOracle:
    """The evolver and the scorer behind the build's cached sessions (`search.Oracle`)."""

    def __init__(self, work: Work[EvolveConfig]) -> None:
        self.work, self.c = work, work.config

    async def evolve(self, instruction: str, action: Action, node_id: int) -> tuple[str, str | None]:
        c = self.c
        text = prompts.render(c.template, dirs=PROMPT_DIRS, instruction=instruction, action=action.name, directive=action.directive)
        # Each node draws with its own seed: siblings, and rollouts that repeat an action, differ.
        params = SamplingParams(c.temperature, c.top_p, c.max_new_tokens, c.seed + node_id)
        result = await self.work.models["evolver"].generate(Request(tuple(user(text)), 1, params))
        if isinstance(result, CallFailure):
            raise S.CallFailed("evolver", result.error)
        evolved, invalid = clean_evolution(result[0].text, instruction, result[0].finish_reason, action.directive)
        self.work.counts["evolver_calls"] += 1
        self.work.counts["invalid_evolutions"] += invalid is not None
        return evolved, invalid

    async def score(self, instruction: str) -> tuple[T.Scores, tuple[str, ...]]:
        c, counts = self.c, self.work.counts
        low, high = c.score_bounds
        texts = [prompts.render(t, dirs=PROMPT_DIRS, instruction=instruction, low=low, high=high) for t in c.score_templates]
        if c.scorer_mode == "expected":  # quality and complexity from the logits, the tags as written
            q_raw, cx_raw, tags_reply = await asyncio.gather(*(self._expected(t) for t in texts[:2]),
                                                             self._ask(texts[2]))  # fmt: skip
            quality, complexity = (None if raw is None else round(raw, 4) for raw in (q_raw, cx_raw))
        else:
            replies = await asyncio.gather(*(self._ask(t) for t in texts))
            quality, complexity = (parse_score(r, low, high) for r in replies[:2])
            tags_reply = replies[2]
        tags, copied = read_tags(tags_reply, prompt_examples(texts[2], instruction))
        unparsed = (quality is None) + (complexity is None) + (tags is None)
        counts["scored"] += 1
        counts["unparsed_scores"] += unparsed
        counts["copied_tags"] += copied
        q, cx = float(low if quality is None else quality), float(low if complexity is None else complexity)
        d = float(diversity_score(tags, low, high) if tags else low)
        return T.Scores(q, cx, d, round(q + cx + d, 4), unparsed), tags or ()

    async def _ask(self, text: str) -> str:
        params = SamplingParams(0.0, 1.0, self.c.judge_max_new_tokens, self.c.seed)
        result = await self.work.models["scorer"].generate(Request(tuple(user(text)), 1, params))
        if isinstance(result, CallFailure):
            raise S.CallFailed("scorer", result.error)
        return result[0].text

    async def _expected(self, text: str) -> float | None:
        stats = self.work.state  # one scorer for the build, made on first use
        if stats.expected is None:
            session, (low, high) = self.work.models["scorer"], self.c.score_bounds
            if session.backend.backend == "transformers":  # its logits (a merge's stand-in: from the cache)
                stats.expected = ExpectedScorer(session.backend, low, high, reader=session.reading)
            else:  # a server's top log-probabilities; the begun reply chosen on one fixed prompt
                probe = prompts.render(self.c.score_templates[0], dirs=PROMPT_DIRS, instruction=PROBE, low=low, high=high)
                stats.expected = ServedExpectedScorer(session.backend, low, high, reader=session.reading, probe=probe)
        return await stats.expected.score(text)
