"""Reading the models' replies: the evolved instruction, a rubric score, a list of intent tags.

Pure functions, table-tested on clean, noisy, truncated and empty replies. A reply that cannot be
read is reported as such (None, or an `invalid` reason), never guessed: the search counts it.
"""

from __future__ import annotations

import json
import re

LOW, HIGH = 1, 5  # the default score range (`--score-range`): every rubric score is an integer in it
SCORES = ("quality", "complexity", "diversity")

_SCORE = re.compile(r"(?i)\bscore\b[^0-9\n]{0,12}([0-9]+(?:\.[0-9]+)?)")
_LONE = re.compile(r"^\W*([0-9]+)\W*$")
# A reply that declines: an apology or "as an AI" opening that says it cannot, or a bare "I can't help".
_REFUSAL = re.compile(
    r"(?i)^\W*(?:(?:i['’]m|i am)\s+(?:so\s+|very\s+)?sorry|sorry|i\s+apologi[sz]e|unfortunately|"
    r"as an ai(?:\s+language model)?)\b[^.!?\n]{0,80}?\b(?:can(?:no|['’])t|can not|unable|not able|"
    r"won['’]t|will not|not (?:allowed|permitted))\b"
    r"|^\W*i\s+(?:can(?:no|['’])t|can not|am unable to|won['’]t)\s+(?:assist|help|comply|fulfil|provide|do that)")
REFUSAL_MAX_CHARS = 300  # longer replies that open with a caveat and then answer are answers
_QUOTED = re.compile(r'"([^"\n]{1,80})"|“([^”\n]{1,80})”')
_LABEL = re.compile(r"^\s*#*\s*(?:the\s+)?(?:new|rewritten|evolved|created|revised)?\s*(?:instruction|prompt)\s*#*\s*:\s*",
                    re.IGNORECASE)  # fmt: skip
_TEMPLATE_WORDS = ("given instruction", "#rewritten prompt#", "instruction rewriter")
_QUOTES = {'"': '"', "'": "'", "“": "”", "«": "»", "`": "`"}
# an acknowledgement opening a reply ("Sure.", "Certainly!"), and what after it says the reply is none
# of an instruction: a request for one, or the model speaking of its own reply
_ACK = re.compile(r"^(?:sure|certainly|of course|okay|ok|absolutely|alright|got it|understood)\b[\s,.!:;-]*", re.I)
_NOT_AN_INSTRUCTION = re.compile(r"^(?:please\s+)?(?:provide|give|share|send)\s+(?:me\s+)?(?:with\s+)?(?:the|an|your)\s+"
                                 r"(?:instruction|prompt|input|text|details)|^(?:i'?ll|i\s+will|i\s+can|i'?d|let\s+me)\b",
                                 re.I)  # fmt: skip


def parse_score(text: str, low: int = LOW, high: int = HIGH) -> int | None:
    """The score a rubric reply gives, in [low, high]: the last "Score: N", else "N/high" (or "N out
    of high"), else a lone number; None when there is none or it is out of range."""
    out_of = re.compile(rf"\b([0-9]+)\s*(?:/|out of)\s*{high}\b")
    for pattern in (_SCORE, out_of):
        found = [float(m.group(1)) for m in pattern.finditer(text or "")]
        if found:
            value = found[-1]
            return int(value) if value == int(value) and low <= value <= high else None
    lone = _LONE.match(text or "")
    if lone and low <= int(lone.group(1)) <= high:
        return int(lone.group(1))
    return None


def parse_range(text: str) -> tuple[int, int] | None:
    """"LOW-HIGH" (e.g. "1-5", "1-6") as two integers, LOW < HIGH; None when malformed."""
    m = re.fullmatch(r"\s*([0-9]+)\s*-\s*([0-9]+)\s*", text or "")
    return (int(m.group(1)), int(m.group(2))) if m and int(m.group(1)) < int(m.group(2)) else None


def prompt_examples(prompt: str, instruction: str) -> set[str]:
    """The quoted phrases a scoring prompt shows (outside the instruction it rates), normalised:
    a reply that repeats one copied the prompt, it did not judge the instruction."""
    text = prompt.replace(instruction, " ")
    return {_normal(a or b) for a, b in _QUOTED.findall(text) if _normal(a or b)}


def read_tags(reply: str, examples: set[str]) -> tuple[tuple[str, ...] | None, int]:
    """The intent tags of a reply (`parse_tags`) less those copied from the prompt's examples, and
    how many were copied; None when nothing of its own is left."""
    tags = parse_tags(reply) or ()
    own = tuple(t for t in tags if _normal(t) not in examples)
    return (own or None), len(tags) - len(own)


def is_refusal(text: str) -> bool:
    """A short reply that declines ("I'm sorry, but I can't assist with that.")."""
    out = (text or "").strip()
    return len(out) <= REFUSAL_MAX_CHARS and _REFUSAL.search(out) is not None


def is_empty(text: str) -> bool:
    """No word at all: empty, whitespace, punctuation or markup only."""
    return not re.search(r"\w", text or "")


def parse_tags(text: str) -> tuple[str, ...] | None:
    """Distinct intent tags (lower-cased, in order) from a JSON list of strings or of {"tag": ...}
    objects, or from a bulleted list; None when the reply holds neither."""
    text = text or ""
    start, end = text.find("["), text.rfind("]")
    items: list = []
    if 0 <= start < end:
        try:
            loaded = json.loads(text[start : end + 1])
            items = loaded if isinstance(loaded, list) else []
        except json.JSONDecodeError:
            items = []
    if not items:
        items = [m.group(1) for m in re.finditer(r"(?m)^\s*(?:[-*•]|\d+[.)])\s+(.+?)\s*$", text)]
    tags: list[str] = []
    for item in items:
        value = item.get("tag") if isinstance(item, dict) else item
        if isinstance(value, str):
            tag = " ".join(value.strip().strip("\"'").lower().split())
            if tag and len(tag) <= 60 and tag not in tags:
                tags.append(tag)
    return tuple(tags) if tags else None


def diversity_score(tags: tuple[str, ...], low: int = LOW, high: int = HIGH) -> int:
    """The number of distinct intents, clamped to the score range so that the three scores share
    one scale."""
    return max(low, min(len(tags), high))


def clean_evolution(text: str, parent: str, finish_reason: str, directive: str = "") -> tuple[str, str | None]:
    """The evolved instruction in a reply, and why it is unusable (None when usable).

    Evol-Instruct's elimination rules, as far as they apply to the instruction itself: a reply
    cut off by the token limit, empty, identical to its parent, or echoing the template is a
    failed evolution, and so is a refusal. The action's `directive` is part of the template: a
    reply that repeats it is a directive, not an instruction (Qwen2.5-Coder-1.5B wrote back "Specify
    the output style: a required format, structure or length for the response." and nothing else 3
    times, another directive once, in cpu-evolve's first half hour). A reply that begins with the
    directive's name as a label ("Add emotional expression: How do you play ...") loses the label.
    An acknowledgement with no instruction after it ("Sure.", "Certainly.", "Sure, please provide the
    instruction and the concrete user and purpose.": 4 of the 148 path-pool nodes of cpu-evolve's
    search) is one too, as Evol-Instruct drops replies of stop words only; one with an instruction
    after it loses the acknowledgement."""
    out = (text or "").strip()
    out = re.sub(r"^```\w*\s*|\s*```$", "", out).strip()
    out = _LABEL.sub("", out, count=1).strip()
    if len(out) >= 2 and out[0] in _QUOTES and out.endswith(_QUOTES[out[0]]):
        out = out[1:-1].strip()
    if directive and _normal(directive) in _normal(out):
        return out, "template words"
    head = directive.split(":", 1)[0].strip() if ":" in directive else ""
    if head and out.lower().startswith(head.lower() + ":"):  # the change's name as a label: "Add emotional expression: How ..."
        out = out[len(head) + 1 :].strip()
    if finish_reason == "length":
        return out, "cut off"
    if is_empty(out):
        return out, "empty"
    if is_refusal(out):
        return out, "refusal"
    if ack := _ACK.match(out):  # "Sure." or "Sure, please provide the instruction ...": no instruction
        rest = out[ack.end() :].strip()
        if not rest or _NOT_AN_INSTRUCTION.match(rest):
            return out, "no instruction"
        out = rest  # "Sure! Describe ..." -> "Describe ..."
    if _normal(out) == _normal(parent):
        return out, "unchanged"
    if any(w in out.lower() for w in _TEMPLATE_WORDS):
        return out, "template words"
    return out, None


def _normal(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", "", text.lower()).split())
