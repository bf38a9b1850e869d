"""Backends by config `type`, created only here. Add one: a module with a class that declares its
`capabilities`, `BACKEND = <that class>`, `open_backend(cfg, **overrides)`, and a line in REGISTRY.

Modules are imported on first use, so a remote run never pays for what it does not use.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from evalkit.backends.base import (
    Backend,
    BackendInfo,
    Capability,
    Generation,
    GenerationRequest,
    MemoryFacts,
    OpenAIEndpoint,
    StateAccess,
    TextGeneration,
    TokenAccess,
    capabilities_of,
)

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
    backend: Any  # satisfies TextGeneration (and what its capabilities name)
    model: "ModelRecord"
    resolved: Any = None  # evalkit.models.ResolvedModel for local files, else None


def backend_module(backend_type: str):
    return importlib.import_module(REGISTRY[backend_type])


def backend_class(backend_type: str) -> type:
    return backend_module(backend_type).BACKEND


def capabilities(backend_type: str) -> frozenset[Capability]:
    """What a backend type can do, from its class: the preflight checks a task kind against it."""
    return capabilities_of(backend_class(backend_type))


def open_backend(cfg: "RunConfig", **overrides: Any) -> OpenedBackend:
    return backend_module(cfg.backend.type).open_backend(cfg, **overrides)


def open_model_file(bcfg: Any, model_path: str, **overrides: Any) -> Any:
    """Another local model file with a backend config's settings (a KLD reference, a checker)."""
    return backend_module(bcfg.type).open_file(bcfg, model_path, **overrides)


def open_tokenizer(model_path: str) -> Any:
    """A GGUF's own tokenizer without its weights (encode/decode/token_text, bos/eos/add_bos)."""
    return backend_module("llama_cpp").VocabTokenizer(model_path)


__all__ = [
    "Backend",
    "BackendInfo",
    "Capability",
    "Generation",
    "GenerationRequest",
    "MemoryFacts",
    "OpenAIEndpoint",
    "OpenedBackend",
    "StateAccess",
    "TextGeneration",
    "TokenAccess",
    "backend_class",
    "capabilities",
    "open_backend",
    "open_model_file",
    "open_tokenizer",
]
