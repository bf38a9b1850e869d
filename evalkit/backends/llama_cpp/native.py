"""The llama-cpp-python calls that are not a loaded model's: quantizing a file, the build's
system info. Kept here so that every llama-cpp-python call lives under evalkit/backends/llama_cpp/."""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

from evalkit.backends.llama_cpp import log  # noqa: F401  (routes llama.cpp's log first)

import llama_cpp  # noqa: E402


def quantize(src: Path, dst: Path, ftype: str) -> int:
    """llama_model_quantize src -> dst as `ftype` (a LLAMA_FTYPE_* name); llama.cpp's return code."""
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, ftype)
    params.allow_requantize = True
    params.nthread = os.cpu_count() or 1
    return llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(params))


def system_info() -> tuple[str, bool]:
    """llama.cpp's system info line and whether this build can offload to a GPU."""
    info = llama_cpp.llama_print_system_info().decode(errors="replace")
    return info, bool(llama_cpp.llama_supports_gpu_offload())
