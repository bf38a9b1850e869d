"""Forbidden markdown: lists, emphasis, headers, tables, code fences."""

from __future__ import annotations

import re
from typing import Literal

from evalkit.checks.base import Check, CheckResult, Params
from evalkit.checks.text import BULLET, FENCE, HEADING, HRULE, NUMBERED, SETEXT_UNDERLINE, TABLE_ROW, TABLE_RULE

Kind = Literal["bullets", "numbered", "bold", "italic", "headers", "tables", "code_fences"]
ALL_KINDS: list[Kind] = ["bullets", "numbered", "bold", "italic", "headers", "tables", "code_fences"]

BOLD_ITALIC = re.compile(r"(\*\*\*|___)(?=\S)[^*_\n]+?(?<=\S)\1")  # both at once
BOLD = re.compile(r"\*\*(?=\S)[^*\n]+?(?<=\S)\*\*|__(?=\S)[^_\n]+?(?<=\S)__")
# '*' emphasis may sit inside a word (un*believ*able); '_' may not (snake_case), as in CommonMark.
ITALIC = re.compile(
    r"(?<!\*)\*(?=[^\s*])[^*\n]+?(?<=[^\s*])\*(?!\*)|(?<![_\w])_(?=[^\s_])[^_\n]+?(?<=[^\s_])_(?![_\w])"
)
HTML_BOLD = re.compile(r"<(b|strong)>.+?</\1>", re.I)
HTML_ITALIC = re.compile(r"<(i|em)>.+?</\1>", re.I)
CODE_SPAN = re.compile(r"`[^`\n]*`")
ESCAPED = re.compile(r"\\[*_`]")


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
        if HEADING.match(line) or (SETEXT_UNDERLINE.match(line) and _setext_text(prev)):
            found["headers"] += 1
        if TABLE_RULE.match(line) or (TABLE_ROW.match(line) and line.count("|") >= 3):
            found["tables"] += 1
        # Inline code and escaped markers render literally; a list marker is not emphasis.
        inline = ESCAPED.sub("", CODE_SPAN.sub("", line))
        inline = re.sub(r"^\s*[*+-]\s+", "", inline)
        both = len(BOLD_ITALIC.findall(inline))
        inline = BOLD_ITALIC.sub("", inline)
        found["bold"] += both + len(BOLD.findall(inline)) + len(HTML_BOLD.findall(inline))
        found["italic"] += both + len(ITALIC.findall(BOLD.sub("", inline))) + len(HTML_ITALIC.findall(inline))
        prev = line
    return found


def _setext_text(prev: str) -> bool:
    """Whether a line can be the text of a setext heading (plain text, not a list or a rule)."""
    return bool(prev.strip()) and not (
        BULLET.match(prev) or NUMBERED.match(prev) or HEADING.match(prev) or HRULE.match(prev)
        or SETEXT_UNDERLINE.match(prev) or TABLE_ROW.match(prev) or TABLE_RULE.match(prev)
    )


def _forbidden_markup(text: str, p: MarkupParams) -> CheckResult:
    found = find_markup(text)
    bad = {k: found[k] for k in p.kinds if found[k]}
    if bad:
        listed = ", ".join(f"{n} {k}" for k, n in bad.items())
        return CheckResult(passed=False, value=bad, reason=f"forbidden markup found: {listed}")
    return CheckResult(passed=True, value={}, reason="no forbidden markup")


FORBIDDEN_MARKUP = Check("forbidden_markup", MarkupParams, _forbidden_markup)
