"""Text helpers shared by checks: paragraphs, words, sentences, markdown structure."""

from __future__ import annotations

import re

# One word each: a URL, a dotted abbreviation (e.g., U.S.), a number with separators (3.14,
# 1,000), or letters/digits joined by apostrophes and hyphens (don't, state-of-the-art).
WORD = re.compile(
    r"(?:https?://|www\.)\S+|(?:[^\W\d_]\.){2,}|\d+(?:[.,]\d+)+|[^\W_]+(?:['’\-][^\W_]+)*",
    re.UNICODE,
)
HEADING = re.compile(r"^\s{0,3}#{1,6}\s+\S")
SETEXT_UNDERLINE = re.compile(r"^\s{0,3}(=+|-{2,})\s*$")
BULLET = re.compile(r"^\s*[-*+•]\s+\S")
NUMBERED = re.compile(r"^\s*\d{1,3}[.)]\s+\S")
HRULE = re.compile(r"^\s{0,3}([-*_])(\s*\1){2,}\s*$")
FENCE = re.compile(r"^\s*(```|~~~)")
TABLE_ROW = re.compile(r"^\s*\|.*\|\s*$")
TABLE_RULE = re.compile(r"^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)+\|?\s*$")  # GFM: one dash is enough
# A line that is nothing but bold text (with an optional colon): models use it as a heading.
BOLD_LINE = re.compile(r"^\s*(\*\*|__)[^*_\n]+?:?\1:?\s*$")


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
    """A block made only of headings (ATX, setext or a bold line), rules, list items (with their
    indented continuation lines), a table or a code fence is not a paragraph."""
    lines = [ln for ln in block.split("\n") if ln.strip()]
    if FENCE.match(lines[0]):
        return True
    if any(TABLE_RULE.match(ln) for ln in lines) and all("|" in ln or TABLE_RULE.match(ln) for ln in lines):
        return True
    in_list = False
    for i, ln in enumerate(lines):
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if BULLET.match(ln) or NUMBERED.match(ln):
            in_list = True
            continue
        if in_list and ln[:1].isspace():
            continue  # the indented continuation of a list item
        in_list = False
        if HEADING.match(ln) or HRULE.match(ln) or SETEXT_UNDERLINE.match(ln) or BOLD_LINE.match(ln):
            continue
        if SETEXT_UNDERLINE.match(nxt):
            continue  # the text of a setext heading
        return False
    return True


def paragraphs(text: str) -> tuple[list[str], list[str]]:
    """(prose paragraphs, markup blocks) of a text."""
    prose, markup = [], []
    for block in blocks(text):
        (markup if is_markup_block(block) else prose).append(block)
    return prose, markup


_ABBREV = re.compile(r"\b(?:e\.g|i\.e|etc|vs|mr|mrs|ms|dr|prof|st|no|fig|approx)\.$", re.I)
_SPLIT = re.compile(r"(?<=[.!?…])[\"'”’)\]]*\s+")
_CONTINUES = re.compile(r"^[\"'“‘(\[]*[^\W\d_]", re.UNICODE)


def sentences(text: str) -> list[str]:
    """Sentences end in . ! ? (or …) followed by space, or at a paragraph break.

    A stop followed by a lowercase word does not end one (an ellipsis that trails on, "U.S. and",
    '"Stop!" she said'), nor does a common abbreviation (Dr. Smith, e.g. Hammers).
    """
    out: list[str] = []
    for block in blocks(text):
        if FENCE.match(block):
            continue
        merged: list[str] = []
        for piece in _SPLIT.split(block.strip()):
            starts = _CONTINUES.match(piece)
            lower = bool(starts) and piece[starts.end() - 1].islower()
            if merged and (lower or _ABBREV.search(merged[-1])):
                merged[-1] = f"{merged[-1]} {piece}"
            else:
                merged.append(piece)
        out.extend(s for s in merged if words(s))
    return out


def scope(text: str, where: str) -> str:
    """The part of a text a check looks at: all, first_paragraph or last_paragraph."""
    if where == "all":
        return text
    prose, _ = paragraphs(text)
    if not prose:
        return ""
    return prose[0] if where == "first_paragraph" else prose[-1]
