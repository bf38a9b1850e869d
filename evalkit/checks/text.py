"""Text helpers shared by checks: paragraphs, words, sentences, markdown structure."""

from __future__ import annotations

import re

WORD = re.compile(r"[^\W_]+(?:['’\-][^\W_]+)*", re.UNICODE)
HEADING = re.compile(r"^\s{0,3}#{1,6}\s+\S")
SETEXT_UNDERLINE = re.compile(r"^\s{0,3}(=+|-{2,})\s*$")
BULLET = re.compile(r"^\s*[-*+•]\s+\S")
NUMBERED = re.compile(r"^\s*\d{1,3}[.)]\s+\S")
HRULE = re.compile(r"^\s{0,3}([-*_])(\s*\1){2,}\s*$")
FENCE = re.compile(r"^\s*(```|~~~)")


def words(text: str) -> list[str]:
    return WORD.findall(text)


def blocks(text: str) -> list[str]:
    """Blank-line separated blocks, stripped, code fences kept whole."""
    out: list[str] = []
    current: list[str] = []
    in_fence = False
    for line in text.replace("\r\n", "\n").split("\n"):
        if FENCE.match(line):
            in_fence = not in_fence
        if not line.strip() and not in_fence:
            if current:
                out.append("\n".join(current).strip())
                current = []
            continue
        current.append(line)
    if current:
        out.append("\n".join(current).strip())
    return [b for b in out if b]


def is_markup_block(block: str) -> bool:
    """A block made only of headings, rules, list items or a code fence is not a paragraph."""
    lines = [ln for ln in block.split("\n") if ln.strip()]
    if FENCE.match(lines[0]):
        return True
    return all(
        HEADING.match(ln) or HRULE.match(ln) or BULLET.match(ln) or NUMBERED.match(ln)
        or SETEXT_UNDERLINE.match(ln)
        for ln in lines
    )


def paragraphs(text: str) -> tuple[list[str], list[str]]:
    """(prose paragraphs, markup blocks) of a text."""
    prose, markup = [], []
    for block in blocks(text):
        (markup if is_markup_block(block) else prose).append(block)
    return prose, markup


_ABBREV = re.compile(r"\b(?:e\.g|i\.e|etc|vs|mr|mrs|ms|dr|prof|st|no|fig|approx)\.$", re.I)


def sentences(text: str) -> list[str]:
    """Sentences end in . ! ? (or …) followed by space or end; common abbreviations do not end one."""
    prose = " ".join(b for b in blocks(text) if not FENCE.match(b))
    pieces = re.split(r"(?<=[.!?…])[\"'”’)\]]*\s+", prose.strip())
    merged: list[str] = []
    for piece in pieces:
        if merged and _ABBREV.search(merged[-1]):
            merged[-1] = f"{merged[-1]} {piece}"
        else:
            merged.append(piece)
    return [s for s in merged if words(s)]


def scope(text: str, where: str) -> str:
    """The part of a text a check looks at: all, first_paragraph or last_paragraph."""
    if where == "all":
        return text
    prose, _ = paragraphs(text)
    if not prose:
        return ""
    return prose[0] if where == "first_paragraph" else prose[-1]
