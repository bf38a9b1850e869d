"""Forbidden markdown: lists, emphasis, headers, tables, code fences."""

from __future__ import annotations

import re
from typing import Literal

from evalkit.checks.base import Check, CheckResult, Params
from evalkit.checks.text import BULLET, FENCE, HEADING, NUMBERED, SETEXT_UNDERLINE

Kind = Literal["bullets", "numbered", "bold", "italic", "headers", "tables", "code_fences"]
ALL_KINDS: list[Kind] = ["bullets", "numbered", "bold", "italic", "headers", "tables", "code_fences"]

BOLD = re.compile(r"\*\*(?=\S)[^*\n]+?(?<=\S)\*\*|__(?=\S)[^_\n]+?(?<=\S)__")
ITALIC = re.compile(
    r"(?<![*\w])\*(?=[^\s*])[^*\n]+?(?<=[^\s*])\*(?![*\w])|(?<![_\w])_(?=[^\s_])[^_\n]+?(?<=[^\s_])_(?![_\w])"
)
TABLE_ROW = re.compile(r"^\s*\|.*\|\s*$")
TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)+\|?\s*$")


class MarkupParams(Params):
    kinds: list[Kind] = list(ALL_KINDS)


def find_markup(text: str) -> dict[str, int]:
    """How many instances of each markup kind a text has."""
    lines = text.replace("\r\n", "\n").split("\n")
    found = {k: 0 for k in ALL_KINDS}
    in_fence = False
    prev = ""
    for line in lines:
        if FENCE.match(line):
            found["code_fences"] += 0 if in_fence else 1
            in_fence = not in_fence
            prev = line
            continue
        if in_fence:
            continue
        if BULLET.match(line) and not re.match(r"^\s*\*\*", line):
            found["bullets"] += 1
        if NUMBERED.match(line):
            found["numbered"] += 1
        if HEADING.match(line) or (SETEXT_UNDERLINE.match(line) and prev.strip() and "=" in line):
            found["headers"] += 1
        if TABLE_RULE.match(line) or (TABLE_ROW.match(line) and line.count("|") >= 3):
            found["tables"] += 1
        found["bold"] += len(BOLD.findall(line))
        found["italic"] += len(ITALIC.findall(BOLD.sub("", line)))
        prev = line
    return found


def _forbidden_markup(text: str, p: MarkupParams) -> CheckResult:
    found = find_markup(text)
    bad = {k: found[k] for k in p.kinds if found[k]}
    if bad:
        listed = ", ".join(f"{n} {k}" for k, n in bad.items())
        return CheckResult(passed=False, value=bad, reason=f"forbidden markup found: {listed}")
    return CheckResult(passed=True, value={}, reason="no forbidden markup")


FORBIDDEN_MARKUP = Check("forbidden_markup", MarkupParams, _forbidden_markup)
