"""Find and validate the runs in one or more outputs trees, read-only.

Every results.json is validated against the current RunResult schema; a file that does not
validate, has another schema_version, or belongs to a run that did not complete is skipped with
a warning that names it (never a crash, never a silently wrong row). samples.jsonl is read
without modifying it: a line cut short by a killed writer is counted and skipped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from evalkit.errors import EvalkitError
from evalkit.records import SCHEMA_VERSION, RunResult, SampleRecord

# Folders in an outputs tree that never hold runs (Hydra's and submitit's bookkeeping).
_SKIP_DIRS = {".hydra", ".submitit", "__pycache__"}


class ReportError(EvalkitError):
    """Nothing can be shown: no runs, unreadable trees, an unknown pair side."""


@dataclass
class Run:
    dir: Path
    root: Path
    result: RunResult
    data: dict[str, Any]  # result.model_dump(mode="json"): uniform dict access to every field

    @property
    def rel(self) -> str:
        try:
            return str(self.dir.relative_to(self.root))
        except ValueError:
            return str(self.dir)


@dataclass
class Loaded:
    runs: list[Run] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _result_files(root: Path) -> tuple[list[Path], list[Path]]:
    """(results.json files, run dirs holding samples.jsonl but no results.json)."""
    results, orphans = [], []
    stack = [root]
    while stack:
        d = stack.pop()
        try:
            entries = list(d.iterdir())
        except OSError:
            continue
        names = {e.name for e in entries}
        if "results.json" in names:
            results.append(d / "results.json")
        elif "samples.jsonl" in names:
            orphans.append(d)
        stack.extend(e for e in entries if e.is_dir() and e.name not in _SKIP_DIRS and not e.is_symlink())
    return sorted(results), sorted(orphans)


def _schema_problem(raw: Any) -> str | None:
    if not isinstance(raw, dict):
        return "not a JSON object"
    if "schema_version" not in raw:
        return "no schema_version (not an evalkit results.json?)"
    if raw["schema_version"] != SCHEMA_VERSION:
        return f"schema_version {raw['schema_version']!r}, this evalkit reads {SCHEMA_VERSION}"
    return None


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{loc}: {err['msg']}{more}"


def load_runs(roots: list[Path], include_incomplete: bool = False) -> Loaded:
    out = Loaded()
    for root in roots:
        if not root.exists():
            raise ReportError(f"no such directory: {root}")
        if not root.is_dir():
            raise ReportError(f"not a directory: {root}")
        files, orphans = _result_files(root)
        for d in orphans:
            out.warnings.append(
                f"skipped {d}: samples.jsonl but no results.json (killed before its summary was "
                "written); re-run the same command to finish it"
            )
        for path in files:
            try:
                raw = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                out.warnings.append(f"skipped {path}: unreadable JSON ({type(exc).__name__}: {str(exc)[:80]})")
                continue
            problem = _schema_problem(raw)
            if problem:
                out.warnings.append(f"skipped {path}: {problem}")
                continue
            try:
                result = RunResult.model_validate(raw)
            except ValidationError as exc:
                out.warnings.append(f"skipped {path}: does not validate ({_first_error(exc)})")
                continue
            if result.status != "complete" and not include_incomplete:
                out.warnings.append(
                    f"skipped {path.parent}: status {result.status}"
                    + (f" ({result.message})" if result.message else "")
                    + "; re-run the same command, or pass --include-incomplete"
                )
                continue
            out.runs.append(Run(path.parent, root, result, result.model_dump(mode="json")))
    return out


@dataclass
class Samples:
    records: list[SampleRecord]
    broken_lines: int


def read_samples(run: Run) -> Samples:
    """The run's own finished samples: latest per key, this model file, the prompts it summarized.

    Read-only: a killed writer's partial line is skipped and counted, never rewritten here.
    """
    path = run.dir / "samples.jsonl"
    if not path.exists():
        return Samples([], 0)
    records: dict[str, SampleRecord] = {}
    broken = 0
    with path.open(encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if not line.strip():
                continue
            try:
                rec = SampleRecord.model_validate_json(line)
            except (ValidationError, ValueError):
                broken += 1
                continue
            prev = records.get(rec.key)
            if prev is None or rec.error is None or prev.error is not None:
                records[rec.key] = rec
    gen = run.result.generation
    wanted = set(gen.per_prompt) if gen else set()
    n_samples = (run.data.get("config") or {}).get("task", {}).get("samples")
    sha = run.result.model.sha256
    keep = [
        r
        for r in records.values()
        if r.error is None
        and r.prompt_id in wanted
        and (n_samples is None or r.sample_index < n_samples)
        and (sha is None or r.model_sha256 == sha)
    ]
    keep.sort(key=lambda r: (r.prompt_id, r.sample_index))
    return Samples(keep, broken)
