"""What a check is: a pure function of text with typed parameters, returning a verdict."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Generic, TypeVar

from pydantic import BaseModel, ConfigDict


class CheckResult(BaseModel):
    passed: bool
    value: Any = None  # what was measured (a count, the offending phrases ...)
    reason: str  # one human sentence
    # Where in the text the failure is, as [start, end) character offsets, when the check can say
    # (forbidden phrases, markup); the report highlights them. None: not located.
    spans: list[tuple[int, int]] | None = None


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


P = TypeVar("P", bound=Params)


@dataclass(frozen=True)
class Check(Generic[P]):
    name: str
    params: type[P]
    fn: Callable[[str, P], CheckResult]
    # IFEval's loose mode retries on variants of the text (first/last line dropped, '*' removed).
    # Checks whose verdict those variants cannot fix honestly (e.g. a minimum length) opt out.
    loose_variants: bool = True

    def __call__(self, text: str, params: P) -> CheckResult:
        return self.fn(text, params)
