"""Prompt suites: YAML files of prompts and the checks each answer must pass.

Suites are data. A user writes their own file and passes `task.file=/path/to/prompts.yaml`; the
file is validated at load (unknown checks and bad parameters included) before any model loads.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from evalkit.checks import Check, Params, compile_check
from evalkit.config import SamplingConfig
from evalkit.errors import TaskError
from evalkit.paths import TASKS_DIR

_ID = re.compile(r"^[A-Za-z0-9_.\-]+$")


class PromptSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    category: str
    prompt: str = Field(min_length=1)
    system: str | None = None
    checks: list[dict[str, Any]] = Field(default_factory=list)

    @field_validator("id")
    @classmethod
    def _id_is_simple(cls, v: str) -> str:
        if not _ID.match(v):
            raise ValueError("ids use letters, digits, '_', '-', '.'")
        return v


class SuiteFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    sampling: dict[str, Any] = Field(default_factory=dict)
    prompts: list[PromptSpec] = Field(min_length=1)


class CompiledCheck(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    name: str
    check: Check
    params: Params


class Prompt(BaseModel):
    id: str
    category: str
    prompt: str
    system: str | None
    checks: list[CompiledCheck]

    def messages(self, system_prompt: str | None = None) -> list[dict[str, str]]:
        system = self.system or system_prompt
        msgs = [{"role": "system", "content": system}] if system else []
        return msgs + [{"role": "user", "content": self.prompt}]


class Suite(BaseModel):
    name: str
    path: Path
    sha256: str
    description: str
    sampling: SamplingConfig
    prompts: list[Prompt]


def suite_path(name_or_path: str) -> Path:
    """A bare name is looked up in tasks/ (tasks/<name>.yaml); anything else is a path."""
    candidate = Path(name_or_path).expanduser()
    if candidate.suffix in {".yaml", ".yml"} or "/" in name_or_path:
        if not candidate.is_file():
            raise TaskError(f"task file not found: {candidate}")
        return candidate
    path = TASKS_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in TASKS_DIR.glob("*.yaml"))
        raise TaskError(f"unknown task file '{name_or_path}'; available: {', '.join(known)}")
    return path


def load_suite(name_or_path: str, sampling_overrides: dict[str, Any] | None = None) -> Suite:
    path = suite_path(name_or_path)
    raw = path.read_bytes()
    try:
        data = yaml.safe_load(raw)
        spec = SuiteFile.model_validate(data)
    except yaml.YAMLError as exc:
        raise TaskError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(x) for x in err["loc"])
        raise TaskError(f"{path}: {where}: {err['msg']}") from None
    ids = [p.id for p in spec.prompts]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise TaskError(f"{path}: duplicate prompt ids: {', '.join(dupes)}")
    merged = {**spec.sampling, **{k: v for k, v in (sampling_overrides or {}).items() if v is not None}}
    try:
        sampling = SamplingConfig.model_validate(merged)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise TaskError(f"{path}: sampling.{err['loc'][0]}: {err['msg']}") from None
    prompts = []
    for p in spec.prompts:
        compiled = []
        for entry in p.checks:
            if not isinstance(entry, dict) or len(entry) != 1:
                raise TaskError(f"{path}: prompt '{p.id}': each check is one `name: {{params}}` entry")
            (name, params), = entry.items()
            try:
                check, cparams = compile_check(name, params)
            except TaskError as exc:
                raise TaskError(f"{path}: prompt '{p.id}': {exc}") from None
            compiled.append(CompiledCheck(name=name, check=check, params=cparams))
        prompts.append(
            Prompt(id=p.id, category=p.category, prompt=p.prompt, system=p.system, checks=compiled)
        )
    return Suite(
        name=spec.name,
        path=path,
        sha256=hashlib.sha256(raw).hexdigest(),
        description=spec.description,
        sampling=sampling,
        prompts=prompts,
    )
