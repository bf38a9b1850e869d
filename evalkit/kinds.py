"""Task kinds as registered units: one `TaskKind` per kind, declared in its runner module.

A runner module under evalkit/runners/ defines its task config and registers its kind with
`register(TaskKind(...))`; the CLI, the preflight and `run.execute` only ever ask this registry,
and the config's task union (evalkit.config.TaskConfig), the Hydra `base_task_<kind>` nodes and
the record's `task_kind` check are derived from it. Adding a kind is its module, its YAML, its
docs and its tests: no central list to extend.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from evalkit.backends.base import Capability
from evalkit.errors import ConfigError

if TYPE_CHECKING:
    from evalkit.config import RunConfig
    from evalkit.records import RunResult


@dataclass(frozen=True)
class TaskKind:
    """What evalkit needs to know about a kind of task, in one place.

    run(ctx) measures and writes results.json; show(result, console, out_dir) prints a stored
    result (a completed run is not measured twice; without it the kind always runs);
    backend_overrides(cfg) adjusts the backend for the task (context size); preflight(cfg, seen)
    checks a job before anything loads (`seen`: files already checked in this command);
    finish(out_dir, result, console) runs after the backend is closed.
    """

    name: str
    config: type  # its pydantic task config: an evalkit.config.TaskBase whose `kind` tag is `name`
    run: Callable[[Any], "RunResult"]
    requires: frozenset[Capability] = frozenset({Capability.TEXT_GENERATION})
    show: Callable[..., None] | None = None
    backend_overrides: Callable[["RunConfig"], dict[str, Any]] | None = None
    preflight: Callable[["RunConfig", set[str]], None] | None = None
    finish: Callable[..., "RunResult"] | None = None


_KINDS: dict[str, TaskKind] = {}
_LOADED = False


def register(kind: TaskKind) -> TaskKind:
    if kind.name in _KINDS and _KINDS[kind.name] is not kind:
        raise ValueError(f"task kind {kind.name!r} is registered twice")
    tag = getattr(kind.config, "model_fields", {}).get("kind")
    if tag is None or tag.default != kind.name:
        raise ValueError(f"task kind {kind.name!r}: its config needs `kind: Literal[{kind.name!r}] = {kind.name!r}`")
    _KINDS[kind.name] = kind
    return kind


def _load() -> None:
    """Import every runner module once: each registers its own kind."""
    global _LOADED
    if _LOADED:
        return
    import evalkit.runners as pkg

    for mod in pkgutil.iter_modules(pkg.__path__):
        if not mod.name.startswith("_"):
            importlib.import_module(f"{pkg.__name__}.{mod.name}")
    _LOADED = True


def kinds() -> dict[str, TaskKind]:
    _load()
    return dict(_KINDS)


def _load_one(name: str) -> None:
    """The module named like the kind ("lm_eval": lm_eval or lmeval), when there is one: a run
    imports only its own runner; any other layout falls back to importing them all."""
    import importlib.util

    for mod in dict.fromkeys((name, name.replace("_", ""))):
        full = f"evalkit.runners.{mod}"
        if mod.isidentifier() and importlib.util.find_spec(full) is not None:
            importlib.import_module(full)
            return


def get_kind(name: str) -> TaskKind:
    found = _KINDS.get(name)
    if found is None:
        _load_one(name)
        found = _KINDS.get(name)
    if found is None:
        _load()
        found = _KINDS.get(name)
    if found is None:
        raise ConfigError(f"unknown task kind '{name}'; available: {', '.join(sorted(kinds()))}")
    return found


def check_capabilities(kind: TaskKind, task_name: str, backend_type: str) -> None:
    """One line when the backend type lacks a capability the kind needs, naming backends that have it."""
    from evalkit.backends import REGISTRY, capabilities

    missing = kind.requires - capabilities(backend_type)
    if not missing:
        return
    need = ", ".join(sorted(c.value for c in missing))
    able = [t for t in REGISTRY if kind.requires <= capabilities(t)]
    what = f"task={task_name}" + (f" (a {kind.name} task)" if task_name != kind.name else "")
    raise ConfigError(
        f"{what} needs {need}, which backend={backend_type} does not have"
        + (f"; use backend={' or backend='.join(able)}" if able else "")
    )
