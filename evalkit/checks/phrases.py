"""Phrases: forbidden (with their common variants) and required keywords."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field

from evalkit.checks.base import Check, CheckResult, Params
from evalkit.checks.text import scope

Scope = Literal["all", "first_paragraph", "last_paragraph"]

# A forbidden phrase also forbids the ways people actually say it.
VARIANTS: dict[str, list[str]] = {
    "it depends": [
        r"\b(?:it|that|this|everything|all)\s+(?:all\s+|really\s+|truly\s+|largely\s+|ultimately\s+)*depends\b",
        r"\bdepends\s+(?:on|upon)\b",
        r"\bdepending\s+on\b",
        r"\bdepend\s+(?:on|upon)\b",  # will / may / could depend on
        r"(?:^|(?<=[.!?:]\s))depends\b",  # the clipped spoken "Depends." opening a sentence
        r"\b(?:hard|difficult|impossible|tough|tricky)\s+to\s+say\b",
        r"\bno\s+one[\s-]+size[\s-]+fits[\s-]+all\b",
        r"\bno\s+(?:single|simple|one|clear)\s+(?:right\s+|correct\s+|best\s+)?answer\b",
        r"\bcase[\s-]+by[\s-]+case\b",
        r"\b(?:it|that|this)\s+(?:really\s+|all\s+)*varies\b",
    ],
    "eureka": [r"\beureka\b"],
    "lightbulb": [r"\blight[\s-]?bulb\b"],
    "aha moment": [r"\baha[\s!-]*moment\b", r"\ba-ha\b"],
    "in conclusion": [r"\bin\s+conclusion\b", r"\bto\s+conclude\b"],
}


def phrase_patterns(phrase: str, variants: bool) -> list[re.Pattern[str]]:
    key = phrase.strip().lower()
    if variants and key in VARIANTS:
        sources = VARIANTS[key]
    else:
        words = [re.escape(w) for w in key.replace("’", "'").split()]
        # Words may be joined by spaces, line breaks or hyphens (time-to-first-token).
        sources = [r"(?<!\w)" + r"[\s\-‐–]+".join(words).replace("'", "['’]") + r"(?!\w)"]
    return [re.compile(s, re.I) for s in sources]


class ForbiddenParams(Params):
    phrases: list[str] = Field(min_length=1)
    variants: bool = True  # also catch "it all depends", "depends on" ...
    scope: Scope = "all"


def _forbidden_phrases(text: str, p: ForbiddenParams) -> CheckResult:
    where = scope(text, p.scope)
    hits: list[str] = []
    spans: list[tuple[int, int]] = []
    base = _offset(text, where, p.scope)
    for phrase in p.phrases:
        for pattern in phrase_patterns(phrase, p.variants):
            for m in pattern.finditer(where):
                hits.append(m.group(0))
                spans.append((base + m.start(), base + m.end()))
    if hits:
        shown = ", ".join(repr(h) for h in dict.fromkeys(h.lower() for h in hits))
        return CheckResult(passed=False, value=hits, reason=f"forbidden phrase(s) used: {shown}", spans=sorted(set(spans)))
    return CheckResult(passed=True, value=[], reason="no forbidden phrase")


def _offset(text: str, part: str, where: str) -> int:
    """Where the scoped part starts in the text (a paragraph is a stripped block of it)."""
    if where == "all" or not part:
        return 0
    i = text.find(part) if where == "first_paragraph" else text.rfind(part)
    return max(i, 0)


class KeywordParams(Params):
    keywords: list[str] = Field(min_length=1)
    min_count: int = Field(1, ge=1)  # each keyword at least this often
    scope: Scope = "all"


def _required_keywords(text: str, p: KeywordParams) -> CheckResult:
    where = scope(text, p.scope)
    counts = {
        k: sum(len(pat.findall(where)) for pat in phrase_patterns(k, variants=False))
        for k in p.keywords
    }
    missing = [k for k, n in counts.items() if n < p.min_count]
    if missing:
        return CheckResult(
            passed=False, value=counts, reason=f"missing keyword(s): {', '.join(missing)}"
        )
    return CheckResult(passed=True, value=counts, reason="all keywords present")


FORBIDDEN_PHRASES = Check("forbidden_phrases", ForbiddenParams, _forbidden_phrases)
REQUIRED_KEYWORDS = Check("required_keywords", KeywordParams, _required_keywords)
