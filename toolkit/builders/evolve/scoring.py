"""Reading the models' replies: the evolved instruction, a rubric score, a list of intent tags.

Pure functions, table-tested on clean, noisy, truncated and empty replies. A reply that cannot be
read is reported as such (None, or an `invalid` reason), never guessed: the search counts it.
"""

from __future__ import annotations

import json
import re

LOW, HIGH = 1, 5  # every rubric score is an integer in [LOW, HIGH]
SCORES = ("quality", "complexity", "diversity")

_SCORE = re.compile(r"(?i)\bscore\b[^0-9\n]{0,12}([0-9]+(?:\.[0-9]+)?)")
_OUT_OF = re.compile(r"\b([0-9])\s*(?:/|out of)\s*5\b")
_LONE = re.compile(r"^\W*([0-9])\W*$")
_LABEL = re.compile(r"^\s*#*\s*(?:the\s+)?(?:new|rewritten|evolved|created|revised)?\s*(?:instruction|prompt)\s*#*\s*:\s*",
                    re.IGNORECASE)  # fmt: skip
_TEMPLATE_WORDS = ("given instruction", "#rewritten prompt#", "instruction rewriter")
_QUOTES = {'"': '"', "'": "'", "“": "”", "«": "»", "`": "`"}


def parse_score(text: str) -> int | None:
    """The score a rubric reply gives, in [LOW, HIGH]: the last "Score: N", else "N/5", else a lone digit."""
    for pattern in (_SCORE, _OUT_OF):
        found = [float(m.group(1)) for m in pattern.finditer(text or "")]
        if found:
            value = found[-1]
            return int(value) if value == int(value) and LOW <= value <= HIGH else None
    lone = _LONE.match(text or "")
    if lone and LOW <= int(lone.group(1)) <= HIGH:
        return int(lone.group(1))
    return None


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


def diversity_score(tags: tuple[str, ...], cap: int = HIGH) -> int:
    """The number of distinct intents, capped so that the three scores share one 1-5 scale."""
    return max(LOW, min(len(tags), cap))


def clean_evolution(text: str, parent: str, finish_reason: str) -> tuple[str, str | None]:
    """The evolved instruction in a reply, and why it is unusable (None when usable).

    Evol-Instruct's elimination rules, as far as they apply to the instruction itself: a reply
    cut off by the token limit, empty, identical to its parent, or echoing the template is a
    failed evolution."""
    out = (text or "").strip()
    out = re.sub(r"^```\w*\s*|\s*```$", "", out).strip()
    out = _LABEL.sub("", out, count=1).strip()
    if len(out) >= 2 and out[0] in _QUOTES and out.endswith(_QUOTES[out[0]]):
        out = out[1:-1].strip()
    if finish_reason == "length":
        return out, "cut off"
    if not out:
        return out, "empty"
    if _normal(out) == _normal(parent):
        return out, "unchanged"
    if any(w in out.lower() for w in _TEMPLATE_WORDS):
        return out, "template words"
    return out, None


def _normal(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", "", text.lower()).split())
