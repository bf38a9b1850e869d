"""Counting checks: paragraphs, words, sentences, each with exact / min / max bounds."""

from __future__ import annotations

from pydantic import model_validator

from evalkit.checks.base import Check, CheckResult, Params
from evalkit.checks.text import paragraphs, sentences, words


class Bounds(Params):
    exact: int | None = None
    min: int | None = None
    max: int | None = None

    @model_validator(mode="after")
    def _some_bound(self) -> "Bounds":
        if self.exact is None and self.min is None and self.max is None:
            raise ValueError("give at least one of exact, min, max")
        return self

    def judge(self, n: int, unit: str) -> CheckResult:
        if self.exact is not None and n != self.exact:
            return CheckResult(passed=False, value=n, reason=f"{n} {unit}, expected exactly {self.exact}")
        if self.min is not None and n < self.min:
            return CheckResult(passed=False, value=n, reason=f"{n} {unit}, expected at least {self.min}")
        if self.max is not None and n > self.max:
            return CheckResult(passed=False, value=n, reason=f"{n} {unit}, expected at most {self.max}")
        return CheckResult(passed=True, value=n, reason=f"{n} {unit}, within bounds")


def _paragraph_count(text: str, p: Bounds) -> CheckResult:
    prose, markup = paragraphs(text)
    result = p.judge(len(prose), "paragraphs")
    if markup:
        result.reason += f" ({len(markup)} markup block(s) such as lists or headings not counted)"
    return result


def _word_count(text: str, p: Bounds) -> CheckResult:
    return p.judge(len(words(text)), "words")


def _sentence_count(text: str, p: Bounds) -> CheckResult:
    return p.judge(len(sentences(text)), "sentences")


PARAGRAPH_COUNT = Check("paragraph_count", Bounds, _paragraph_count)
WORD_COUNT = Check("word_count", Bounds, _word_count)
SENTENCE_COUNT = Check("sentence_count", Bounds, _sentence_count)
