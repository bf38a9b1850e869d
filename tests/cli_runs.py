"""The real CLI from a test: run it, read back the runs it wrote, the sweeps several tests share.

Tests that run `python -m evalkit` end to end all need the same few steps; kept here so each test
module states only what it runs and what it checks.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from evalkit.records import RunResult, SampleRecord


def run_evalkit(cwd: Path, *args: str, env: dict | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
    """`python -m evalkit *args` in cwd, as a user would run it (env: the whole environment)."""
    return subprocess.run([sys.executable, "-m", "evalkit", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def fresh_cache_env(tmp_path_factory) -> tuple[Path, dict]:
    """A fresh EVALKIT_CACHE that shares the default cache's ladder variants (built once for all tests)."""
    from evalkit.paths import cache_dir

    cache = tmp_path_factory.mktemp("evalkit_cache")
    shared_ladder = cache_dir() / "ladder"
    shared_ladder.mkdir(parents=True, exist_ok=True)
    (cache / "ladder").symlink_to(shared_ladder, target_is_directory=True)
    return cache, {**os.environ, "EVALKIT_CACHE": str(cache), "PYTHONUNBUFFERED": "1"}


def greedy_sweep(model: str, method: str, *extra: str, quants: str | None = None, max_tokens: int = 48) -> list[str]:
    """`-m` over plain and `method` speculative decoding, greedy, on task=constraints, one thread."""
    return [
        "-m",
        f"model={model}",
        *([f"model.quant={quants}"] if quants else []),
        f"backend.speculative=none,{method}",
        "backend.n_threads=1",
        "task=constraints",
        "task.sampling.temperature=0",
        f"task.sampling.max_tokens={max_tokens}",
        "progress=false",
        *extra,
    ]


def speculative_method(result: RunResult) -> str:
    return result.config["backend"]["speculative"]


def runs_by(cwd: Path, key: Callable[[RunResult], str]) -> dict[str, tuple[Path, RunResult]]:
    """Every run under cwd/outputs as key(result) -> (run directory, result); keys must be unique."""
    runs: dict[str, tuple[Path, RunResult]] = {}
    for path in (cwd / "outputs").rglob("results.json"):
        result = RunResult.model_validate_json(path.read_text())
        assert key(result) not in runs, f"two runs for {key(result)} under {cwd}"
        runs[key(result)] = (path.parent, result)
    return runs


def sample_records(run_dir: Path) -> list[SampleRecord]:
    return [SampleRecord.model_validate_json(ln) for ln in (run_dir / "samples.jsonl").read_text().splitlines()]
