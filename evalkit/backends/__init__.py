"""Backends by config `type`. Add one: a module with `open_backend(cfg, **overrides)` and a line here.

Modules are imported on first use, so a remote run never pays for what it does not use.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from evalkit.backends.base import Backend, BackendInfo, Generation, GenerationRequest

if TYPE_CHECKING:
    from evalkit.config import RunConfig
    from evalkit.records import ModelRecord

REGISTRY: dict[str, str] = {
    "llama_cpp": "evalkit.backends.llama_cpp",
    "openai": "evalkit.backends.openai",
    "llama_server": "evalkit.backends.llama_server",
}


@dataclass
class OpenedBackend:
    backend: Any  # satisfies Backend
    model: "ModelRecord"
    resolved: Any = None  # evalkit.models.ResolvedModel for local files, else None


def open_backend(cfg: "RunConfig", **overrides: Any) -> OpenedBackend:
    module = importlib.import_module(REGISTRY[cfg.backend.type])
    return module.open_backend(cfg, **overrides)


__all__ = ["Backend", "BackendInfo", "Generation", "GenerationRequest", "OpenedBackend", "open_backend"]
