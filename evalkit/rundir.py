"""Where a run writes: a directory named by what was run, so the same command resumes it.

outputs/<task>/<model>[-<quant>]/<backend>-<hash>, the hash covering the model, backend and task
configs and the hardware class. Same command on the same kind of machine: same directory, and
the finished samples in it are kept. Another machine class: another directory, never averaged.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from omegaconf import OmegaConf

from evalkit.records import RESULTS_FILE, RunResult, stable_hash


def _slug(text: object) -> str:
    return re.sub(r"[^A-Za-z0-9_.\-]+", "_", str(text)).strip("_") or "x"


# How many samples, and which prompts, do not change what one sample is: asking for more later
# extends the same run instead of starting another.
_EXTENDABLE = {"samples", "prompts"}


def run_key(model: dict, backend: dict, task: dict) -> str:
    from evalkit.hardware import hardware_info

    task = {k: v for k, v in task.items() if k not in _EXTENDABLE}
    return stable_hash(
        {"model": model, "backend": backend, "task": task, "hw": hardware_info().fingerprint}, 10
    )


def run_dir_resolver(*, _root_) -> str:
    model = OmegaConf.to_container(_root_.model, resolve=True)
    backend = OmegaConf.to_container(_root_.backend, resolve=True)
    task = OmegaConf.to_container(_root_.task, resolve=True)
    quant = model.get("quant")  # type: ignore[union-attr]
    variant = f"{model['name']}-{quant}" if quant else model["name"]  # type: ignore[index]
    key = run_key(model, backend, task)  # type: ignore[arg-type]
    return f"{_slug(task['name'])}/{_slug(variant)}/{_slug(backend['type'])}-{key}"  # type: ignore[index]


def completed_runs_of_task(run_dir: Path) -> Iterator[tuple[Path, RunResult]]:
    """(run dir, its result) of every complete run beside run_dir's task, any variant.

    Read by `records.read_result`: a sibling written by an older evalkit is upgraded; one that
    cannot be read is left out.
    """
    for path in sorted(run_dir.parent.parent.glob(f"*/*/{RESULTS_FILE}")):  # <task>/<variant>/<run>
        result = RunResult.read(path.parent)
        if result is not None and result.status == "complete":
            yield path.parent, result
