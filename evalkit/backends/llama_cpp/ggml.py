"""ggml's own version and registered devices, read from the libraries llama-cpp-python loaded.

llama-bench prints both; llama-cpp-python exposes neither, so they are read with ctypes.
"""

from __future__ import annotations

import ctypes
import os


def _ggml_libs() -> tuple[ctypes.CDLL, ctypes.CDLL] | None:
    """libggml-base and libggml from the directory llama-cpp-python loaded libllama from."""
    try:
        from llama_cpp import llama_cpp as low

        lib_dir = os.path.dirname(low._lib._name)
        base = ctypes.CDLL(os.path.join(lib_dir, "libggml-base.so"))
        ggml = ctypes.CDLL(os.path.join(lib_dir, "libggml.so"))
        return base, ggml
    except (OSError, AttributeError, ImportError):
        return None


def ggml_build() -> str:
    """ggml's version and commit as compiled into this llama-cpp-python ("0.9.5 (0c1e570)")."""
    libs = _ggml_libs()
    if libs is None:
        return "unknown"
    base, _ = libs
    try:
        base.ggml_version.restype = ctypes.c_char_p
        base.ggml_commit.restype = ctypes.c_char_p
        return f"{base.ggml_version().decode()} ({base.ggml_commit().decode()})"
    except AttributeError:
        return "unknown"


def ggml_backends() -> str | None:
    """Registered ggml backends other than the CPU (llama-bench's "backend" column)."""
    libs = _ggml_libs()
    if libs is None:
        return None
    base, ggml = libs
    try:
        ggml.ggml_backend_reg_count.restype = ctypes.c_size_t
        ggml.ggml_backend_reg_get.restype = ctypes.c_void_p
        ggml.ggml_backend_reg_get.argtypes = [ctypes.c_size_t]
        base.ggml_backend_reg_name.restype = ctypes.c_char_p
        base.ggml_backend_reg_name.argtypes = [ctypes.c_void_p]
        names = [
            base.ggml_backend_reg_name(ggml.ggml_backend_reg_get(i)).decode()
            for i in range(ggml.ggml_backend_reg_count())
        ]
    except AttributeError:
        return None
    gpu = [n for n in names if n != "CPU"]
    return ",".join(gpu) if gpu else "CPU"
