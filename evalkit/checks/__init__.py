"""Constraint checkers: pure functions of text, one registry, strict and loose verdicts.

Add a checker: write a module exporting a `Check`, then add one line to REGISTRY.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from evalkit.checks import counts, ifeval, markup, phrases
from evalkit.checks.base import Check, CheckResult, Params
from evalkit.errors import TaskError

REGISTRY: dict[str, Check] = {
    "paragraph_count": counts.PARAGRAPH_COUNT,
    "word_count": counts.WORD_COUNT,
    "sentence_count": counts.SENTENCE_COUNT,
    "forbidden_markup": markup.FORBIDDEN_MARKUP,
    "forbidden_phrases": phrases.FORBIDDEN_PHRASES,
    "required_keywords": phrases.REQUIRED_KEYWORDS,
    "ifeval": ifeval.IFEVAL,  # lm-eval's IFEval checkers: {id: "...", kwargs: {...}}
}


def compile_check(name: str, params: dict[str, Any] | None) -> tuple[Check, Params]:
    """Look a check up and validate its parameters: an unknown name is a load-time error."""
    if name not in REGISTRY:
        raise TaskError(f"unknown check '{name}'; known: {', '.join(sorted(REGISTRY))}")
    check = REGISTRY[name]
    try:
        return check, check.params.model_validate(params or {})
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(x) for x in err["loc"])
        raise TaskError(f"check '{name}': {where + ': ' if where else ''}{err['msg']}") from None


def loose_variants(text: str) -> list[str]:
    """IFEval's loose mode: the text without its first line, last line, both, and without '*'."""
    lines = text.split("\n")
    cut = [
        text,
        "\n".join(lines[1:]).strip(),
        "\n".join(lines[:-1]).strip(),
        "\n".join(lines[1:-1]).strip(),
    ]
    return cut + [c.replace("*", "") for c in cut]


def run_check(check: Check, params: Params, text: str) -> tuple[CheckResult, bool]:
    """(strict result, loose verdict)."""
    strict = check(text, params)
    if strict.passed or not check.loose_variants:
        return strict, strict.passed
    loose = any(check(v, params).passed for v in loose_variants(text)[1:] if v.strip())
    return strict, loose


__all__ = ["REGISTRY", "Check", "CheckResult", "Params", "compile_check", "run_check"]
