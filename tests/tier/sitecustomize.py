"""The fast tier's guard: in a test not marked slow, loading a model fails the test.

tests/conftest.py installs it in the test process; subprocesses of such a test (the CLI, a Python
server) get it through PYTHONPATH, where Python imports this file at startup. A vocab-only Llama
(a tokenizer, no weights) is allowed.
"""

from __future__ import annotations

import importlib.abc
import os
import sys

ENV = "EVALKIT_FAST_TIER"  # set to the test's id while a test not marked slow runs
MESSAGE = "a test not marked slow loaded a model ({what}): mark it slow (pytest.mark.slow)"


LOG_ENV = "EVALKIT_FAST_TIER_LOG"  # a file each refusal is appended to (the test fails on it)


def _refuse(what: str):
    message = MESSAGE.format(what=what)
    log = os.environ.get(LOG_ENV)
    if log:  # the test fails even where it expects this process to fail, or swallows the error
        with open(log, "a") as f:
            f.write(message + "\n")
    raise RuntimeError(message)


def _patch(llama_cpp) -> None:
    """Wrap what loads weights: the high-level Llama, the low-level loader, quantization."""
    if getattr(llama_cpp, "_evalkit_tier_guard", False):
        return
    llama_cpp._evalkit_tier_guard = True
    init = llama_cpp.Llama.__init__

    def guarded_init(self, *args, **kwargs):
        if os.environ.get(ENV) and not kwargs.get("vocab_only"):
            _refuse("llama_cpp.Llama")
        return init(self, *args, **kwargs)

    llama_cpp.Llama.__init__ = guarded_init
    low = sys.modules.get("llama_cpp.llama_cpp")
    for name in ("llama_model_load_from_file", "llama_load_model_from_file", "llama_model_quantize"):
        for mod in (llama_cpp, low):
            fn = getattr(mod, name, None) if mod is not None else None
            if fn is None:
                continue

            def guarded(*args, _fn=fn, _name=name, **kwargs):
                params = args[1] if len(args) > 1 else kwargs.get("params")
                if os.environ.get(ENV) and not getattr(params, "vocab_only", False):
                    _refuse(f"llama_cpp.{_name}")
                return _fn(*args, **kwargs)

            setattr(mod, name, guarded)


class _AfterImport(importlib.abc.MetaPathFinder):
    """Patches llama_cpp right after its first import (it is heavy: never imported for nothing)."""

    def find_spec(self, name, path, target=None):
        if name != "llama_cpp":
            return None
        sys.meta_path.remove(self)
        try:
            import importlib.util

            spec = importlib.util.find_spec(name)
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        exec_module = loader.exec_module

        def exec_and_patch(module):
            exec_module(module)
            _patch(module)

        loader.exec_module = exec_and_patch  # type: ignore[method-assign]
        return spec


_TOOLS = ("llama-server", "llama-bench", "llama-perplexity", "llama-cli")


def _patch_popen() -> None:
    """A process started on a GGUF file, or one of llama.cpp's tools, loads a model too."""
    import subprocess

    if getattr(subprocess.Popen, "_evalkit_tier_guard", False):
        return
    init = subprocess.Popen.__init__

    def guarded_init(self, args, *rest, **kwargs):
        if os.environ.get(ENV):
            argv = [os.fsdecode(a) for a in ([args] if isinstance(args, (str, bytes, os.PathLike)) else args)]
            program = os.path.basename(argv[0]) if argv else ""
            # A Python child carries this guard itself (PYTHONPATH); any other one is judged here.
            if not program.startswith("python") and argv[0] != sys.executable:
                for a in argv:
                    if a.endswith(".gguf") or os.path.basename(a).startswith(_TOOLS):
                        _refuse(f"a process running {program} on {os.path.basename(a)}")
        init(self, args, *rest, **kwargs)

    subprocess.Popen.__init__ = guarded_init  # type: ignore[method-assign]
    subprocess.Popen._evalkit_tier_guard = True  # type: ignore[attr-defined]


def install() -> None:
    _patch_popen()
    if "llama_cpp" in sys.modules:
        _patch(sys.modules["llama_cpp"])
    elif not any(isinstance(f, _AfterImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterImport())


if os.environ.get(ENV):
    install()
