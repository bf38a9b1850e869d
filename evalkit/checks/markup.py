"""Forbidden markdown: lists, emphasis, headers, tables, code fences."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Literal

from evalkit.checks.base import Check, CheckResult, Params
from evalkit.checks.text import BULLET, FENCE, HEADING, HRULE, NUMBERED, SETEXT_UNDERLINE, TABLE_ROW, TABLE_RULE

Kind = Literal["bullets", "numbered", "bold", "italic", "headers", "tables", "code_fences"]
ALL_KINDS: list[Kind] = ["bullets", "numbered", "bold", "italic", "headers", "tables", "code_fences"]

BOLD_ITALIC = re.compile(r"(\*\*\*|___)(?=\S)[^*_\n]+?(?<=\S)\1")  # both at once
# '__' inside a word (my__private__helper) is not bold, as in CommonMark.
BOLD = re.compile(r"\*\*(?=\S)[^*\n]+?(?<=\S)\*\*|(?<!\w)__(?=\S)[^_\n]+?(?<=\S)__(?!\w)")
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


def markup_instances(text: str) -> Iterator[tuple[str, int, int, bool]]:
    """(kind, start, end, counted) for every piece of markup, as [start, end) offsets in the text.

    Line kinds cover their whole line; a code fence covers its fence lines and what is between
    them, of which only the opening line is `counted` (one fence, however long). The one scanner
    behind both the counts (find_markup) and the spans the report highlights (markup_spans).
    """
    in_fence = False
    prev = ""
    pos = 0
    for raw in text.split("\n"):
        line = raw.rstrip("\r")
        start, end = pos, pos + len(line)
        pos += len(raw) + 1
        if FENCE.match(line):
            yield "code_fences", start, end, not in_fence
            in_fence = not in_fence
            prev = line
            continue
        if in_fence:
            yield "code_fences", start, end, False
            continue
        if BULLET.match(line) and not re.match(r"^\s*\*\*", line):
            yield "bullets", start, end, True
        if NUMBERED.match(line):
            yield "numbered", start, end, True
        if HEADING.match(line) or (SETEXT_UNDERLINE.match(line) and _setext_text(prev)):
            yield "headers", start, end, True
        if TABLE_RULE.match(line) or (TABLE_ROW.match(line) and line.count("|") >= 3):
            yield "tables", start, end, True
        yield from ((k, start + a, start + b, True) for k, a, b in _emphasis(line))
        prev = line


def _blank(line: str, pattern: re.Pattern[str]) -> str:
    """The line with the pattern's matches overwritten by spaces (offsets stay put)."""
    return pattern.sub(lambda m: " " * len(m.group(0)), line)


def _emphasis(line: str) -> Iterator[tuple[str, int, int]]:
    # Inline code and escaped markers render literally; a list marker is not emphasis.
    inline = _blank(_blank(line, CODE_SPAN), ESCAPED)
    inline = _blank(inline, re.compile(r"^\s*[*+-]\s+"))
    for m in BOLD_ITALIC.finditer(inline):  # ***x***: bold and italic at once
        yield "bold", m.start(), m.end()
        yield "italic", m.start(), m.end()
    inline = _blank(inline, BOLD_ITALIC)
    for pattern, kind in ((BOLD, "bold"), (HTML_BOLD, "bold"), (HTML_ITALIC, "italic")):
        for m in pattern.finditer(inline):
            yield kind, m.start(), m.end()
    for m in ITALIC.finditer(_blank(inline, BOLD)):
        yield "italic", m.start(), m.end()


def find_markup(text: str) -> dict[str, int]:
    """How many instances of each markup kind a text has."""
    found = {k: 0 for k in ALL_KINDS}
    for kind, _, _, counted in markup_instances(text):
        found[kind] += counted
    return found


def markup_spans(text: str, kinds: list[str]) -> list[tuple[int, int]]:
    """[start, end) offsets of the markup kinds in the text, for the report to highlight."""
    return sorted({(a, b) for kind, a, b, _ in markup_instances(text) if kind in kinds})


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
        return CheckResult(passed=False, value=bad, reason=f"forbidden markup found: {listed}", spans=markup_spans(text, list(bad)))
    return CheckResult(passed=True, value={}, reason="no forbidden markup")


FORBIDDEN_MARKUP = Check("forbidden_markup", MarkupParams, _forbidden_markup)
