"""The pair rules of self-refine instruction-tuning: which sampled paths become (chosen, rejected).

Pure functions over scored candidates, so every rule is table-tested without a model. For one
prompt the student drew k chain-of-thought samples, each scored against gold:

- chosen: a correct sample of the student's own; when it has none and `fallback="teacher"`, a
  rationale of the teacher (the CoT dataset's correct demonstrations: the "ground truth from the LLM").
- rejected, by `rejected`: "wrong" (a wrong CoT sample, the default), "direct" (the student's
  answers to the same question without reasoning, right or wrong: the paper's CoT-vs-plain
  contrast), or "both" (wrong samples and the direct answers, interleaved).
- prompts the student always solves are skipped unless `keep_solved` (only a direct answer can be
  their rejected side); prompts it never solves have no chosen side unless the teacher's is allowed.
- candidates are deduplicated by normalised text, a pair never has the same text on both sides, and
  at most `pairs_per_prompt` pairs are made (0: one per correct sample), each reusing the
  least-used chosen and rejected.

No randomness: candidates are taken in sample order, which is already random (the samples are draws),
and raising `--samples` later keeps the pairs the earlier samples made.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from toolkit.errors import UserError

Origin = Literal["student", "teacher", "direct"]
RejectedMode = Literal["wrong", "direct", "both"]
Fallback = Literal["none", "teacher"]
REJECTED_MODES: tuple[str, ...] = ("wrong", "direct", "both")
FALLBACKS: tuple[str, ...] = ("none", "teacher")


@dataclass(frozen=True, slots=True)
class Candidate:
    """One scored answer to a prompt. `idx` is the sample index of a student CoT sample (else None)."""

    text: str
    pred: str | None
    correct: bool
    origin: Origin = "student"
    idx: int | None = None


@dataclass(frozen=True, slots=True)
class Pair:
    chosen: Candidate
    rejected: Candidate

    @property
    def chosen_from(self) -> str:
        return "teacher" if self.chosen.origin == "teacher" else "student"

    @property
    def rejected_from(self) -> str:
        return "direct" if self.rejected.origin == "direct" else "wrong"


@dataclass(frozen=True, slots=True)
class PairRules:
    rejected: RejectedMode = "wrong"
    pairs_per_prompt: int = 2
    fallback: Fallback = "none"
    keep_solved: bool = False

    def __post_init__(self) -> None:
        if self.rejected not in REJECTED_MODES:
            raise UserError(f"--rejected {self.rejected!r} is not a pair rule; use one of {', '.join(REJECTED_MODES)}")
        if self.fallback not in FALLBACKS:
            raise UserError(f"--fallback {self.fallback!r} is not known; use one of {', '.join(FALLBACKS)}")
        if self.pairs_per_prompt < 0:
            raise UserError("--pairs-per-prompt must be 0 (one pair per correct sample) or more")
        if self.keep_solved and not self.wants_direct:
            raise UserError("--keep-solved pairs solved problems against the direct answer; add --rejected direct or both")

    @property
    def wants_direct(self) -> bool:
        return self.rejected in ("direct", "both")

    def to_manifest(self) -> dict:
        return {"rejected": self.rejected, "pairs_per_prompt": self.pairs_per_prompt,
                "fallback": self.fallback, "keep_solved": self.keep_solved}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Outcome:
    """The pairs of one prompt, or why it has none: "all_correct" (skipped as solved), "none_correct"
    (no chosen side), "no_rejected" (nothing to reject), "identical" (every pair had one text twice)."""

    pairs: tuple[Pair, ...]
    pass_rate: float
    skipped: str | None = None


def normalize_text(text: str) -> str:
    """What "the same answer text" means: case and whitespace do not count."""
    return " ".join(text.split()).casefold()


def pass_rate(samples: Sequence[Candidate]) -> float:
    return sum(s.correct for s in samples) / len(samples) if samples else 0.0


def make_pairs(
    samples: Sequence[Candidate],
    rules: PairRules,
    *,
    direct: Sequence[Candidate] = (),
    teacher: Sequence[Candidate] = (),
) -> Outcome:
    """The pairs for one prompt from its student CoT `samples`, the `direct` answers (needed by the
    "direct" and "both" rules) and the teacher's rationales (used only by `fallback="teacher"`).
    `pairs_per_prompt=0` makes one pair per distinct correct sample (the paper's DPO_CoT)."""
    rate = pass_rate(samples)
    if samples and rate == 1.0 and not rules.keep_solved:
        return Outcome((), rate, "all_correct")
    chosen = unique([s for s in samples if s.correct])
    if not chosen and rules.fallback == "teacher":
        chosen = unique(teacher)
    if not chosen:
        return Outcome((), rate, "none_correct")
    rejected = rejected_candidates(samples, direct, rules.rejected)
    if not rejected:
        return Outcome((), rate, "no_rejected")
    pairs = spread(chosen, rejected, rules.pairs_per_prompt or len(chosen))
    return Outcome(pairs, rate, None if pairs else "identical")


def rejected_candidates(samples: Sequence[Candidate], direct: Sequence[Candidate], mode: RejectedMode) -> list[Candidate]:
    """Wrong samples, the direct answers, or both interleaved (wrong, direct, wrong, wrong, ...), so
    a cap of two pairs under "both" gives one of each."""
    wrong = unique([s for s in samples if not s.correct])
    plain = unique(direct)
    if mode == "wrong":
        return wrong
    if mode == "direct":
        return plain
    return unique([*wrong[:1], *plain, *wrong[1:]])


def unique(candidates: Sequence[Candidate]) -> list[Candidate]:
    """The first candidate of each normalised text, in order."""
    seen: set[str] = set()
    kept = []
    for c in candidates:
        key = normalize_text(c.text)
        if key not in seen:
            seen.add(key)
            kept.append(c)
    return kept


def spread(chosen: Sequence[Candidate], rejected: Sequence[Candidate], limit: int) -> tuple[Pair, ...]:
    """Up to `limit` distinct pairs; each next one takes the least-used chosen and rejected (ties: the
    earliest), so two pairs use two different samples where there are two. Same-text pairs are never made."""
    options = [(i, j) for i in range(len(chosen)) for j in range(len(rejected))
               if normalize_text(chosen[i].text) != normalize_text(rejected[j].text)]  # fmt: skip
    used_c: Counter[int] = Counter()
    used_r: Counter[int] = Counter()
    pairs = []
    while options and len(pairs) < limit:
        i, j = min(options, key=lambda ij: (used_c[ij[0]] + used_r[ij[1]], ij))
        options.remove((i, j))
        used_c[i] += 1
        used_r[j] += 1
        pairs.append(Pair(chosen[i], rejected[j]))
    return tuple(pairs)
