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


def markup_spans(text: str, kinds: list[str]) -> list[tuple[int, int]]:
    """[start, end) offsets of the markup kinds in the text (whole lines for line kinds),
    found the way find_markup counts them, for the report to highlight."""
    spans: list[tuple[int, int]] = []
    in_fence = False
    prev = ""
    pos = 0
    for raw in text.split("\n"):
        line = raw.rstrip("\r")
        start, end = pos, pos + len(line)
        pos += len(raw) + 1
        if FENCE.match(line):
            if "code_fences" in kinds:
                spans.append((start, end))
            in_fence = not in_fence
            prev = line
            continue
        if in_fence:
            if "code_fences" in kinds:
                spans.append((start, end))
            continue
        whole = (
            ("bullets" in kinds and BULLET.match(line) and not re.match(r"^\s*\*\*", line))
            or ("numbered" in kinds and NUMBERED.match(line))
            or ("headers" in kinds and (HEADING.match(line) or (SETEXT_UNDERLINE.match(line) and prev.strip() and "=" in line)))
            or ("tables" in kinds and (TABLE_RULE.match(line) or (TABLE_ROW.match(line) and line.count("|") >= 3)))
        )
        if whole:
            spans.append((start, end))
        if "bold" in kinds:
            spans.extend((start + m.start(), start + m.end()) for m in BOLD.finditer(line))
        if "italic" in kinds:
            blanked = BOLD.sub(lambda m: " " * len(m.group(0)), line)  # same length: offsets hold
            spans.extend((start + m.start(), start + m.end()) for m in ITALIC.finditer(blanked))
        prev = line
    return sorted(set(spans))


def _forbidden_markup(text: str, p: MarkupParams) -> CheckResult:
    found = find_markup(text)
    bad = {k: found[k] for k in p.kinds if found[k]}
    if bad:
        listed = ", ".join(f"{n} {k}" for k, n in bad.items())
        return CheckResult(passed=False, value=bad, reason=f"forbidden markup found: {listed}", spans=markup_spans(text, list(bad)))
    return CheckResult(passed=True, value={}, reason="no forbidden markup")


FORBIDDEN_MARKUP = Check("forbidden_markup", MarkupParams, _forbidden_markup)
