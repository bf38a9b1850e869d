"""Find and validate the runs in one or more outputs trees, read-only.

Every results.json is read by `records.read_result`: an older schema_version is upgraded, a file
that does not validate, comes from a newer evalkit, or belongs to a run that did not complete is
skipped with a warning that names it (never a crash, never a silently wrong row). samples.jsonl is
read by `records.read_samples`, without modifying it: a line cut short by a killed writer is
counted and skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from evalkit.errors import EvalkitError
from evalkit.records import RecordError, RunResult, SampleRecord, latest_per_key, read_result
from evalkit.records import read_samples as read_samples_file

# Folders in an outputs tree that never hold runs (Hydra's and submitit's bookkeeping).
_SKIP_DIRS = {".hydra", ".submitit", "__pycache__"}


class ReportError(EvalkitError):
    """Nothing can be shown: no runs, unreadable trees, an unknown pair side."""


@dataclass
class Run:
    dir: Path
    root: Path
    result: RunResult  # typed access only: report code reads no raw results.json dicts

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
                result = read_result(path)
            except RecordError as exc:
                out.warnings.append(f"skipped {path}: {exc}")
                continue
            if result.status != "complete" and not include_incomplete:
                out.warnings.append(
                    f"skipped {path.parent}: status {result.status}"
                    + (f" ({result.message})" if result.message else "")
                    + "; re-run the same command, or pass --include-incomplete"
                )
                continue
            out.runs.append(Run(path.parent, root, result))
    return out


@dataclass
class Samples:
    records: list[SampleRecord]
    broken_lines: int


def read_samples(run: Run) -> Samples:
    """The run's own finished samples: latest per key, this model file, the prompts it summarized.

    Read-only: a killed writer's partial line is skipped and counted, never rewritten here.
    """
    read = read_samples_file(run.dir)
    records = latest_per_key(read.records)
    broken = read.broken_lines
    gen = run.result.generation
    wanted = set(gen.per_prompt) if gen else set()
    n_samples = (run.result.config.get("task") or {}).get("samples")
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
