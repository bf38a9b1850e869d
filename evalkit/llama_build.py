"""Which llama.cpp build runs: its flavour ("cpu", "cuda", ...) and the options it was compiled with.

The same GGUF runs different kernels on a CPU and a CUDA build (and on a native and a generic CPU
build), so every record says which one produced it. The options come from the ggml-config.cmake
that llama-cpp-python's wheel installs beside its libraries: the CMake cache of its own build.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import metadata

# ggml backend names as llama.cpp prints them -> flavour (the name of the ggml-<flavour> library)
GPU_BACKENDS = {
    "CUDA": "cuda", "ROCm": "hip", "HIP": "hip", "Metal": "metal", "MTL": "metal", "Vulkan": "vulkan",
    "SYCL": "sycl", "OpenCL": "opencl", "CANN": "cann", "MUSA": "musa",
}  # fmt: skip

# The compile options that decide which kernels run.
KERNEL_OPTIONS = (
    "GGML_AVAILABLE_BACKENDS", "GGML_NATIVE", "GGML_CUDA", "GGML_HIP", "GGML_METAL", "GGML_VULKAN",
    "GGML_SYCL", "GGML_BLAS", "GGML_AVX", "GGML_AVX2", "GGML_AVX512", "GGML_AVX512_VBMI",
    "GGML_AVX512_VNNI", "GGML_AVX512_BF16", "GGML_AVX_VNNI", "GGML_FMA", "GGML_F16C", "GGML_BMI2",
    "GGML_AMX_TILE", "GGML_AMX_INT8", "GGML_AMX_BF16", "GGML_BUILD_COMMIT",
)  # fmt: skip


def flavour_from_names(names: str, gpu_offload: bool = False) -> str:
    """The first GPU backend named in `names` (system info, a device list), else "cpu"."""
    for name, flavour in GPU_BACKENDS.items():
        if re.search(rf"\b{name}\d*\s*:", names):
            return flavour
    return "gpu" if gpu_offload else "cpu"


def llama_cpp_flavour() -> str:
    """The installed llama-cpp-python's flavour, from the backends its library registered."""
    from evalkit.backends.llama_cpp.native import system_info

    return flavour_from_names(*system_info())


@cache
def llama_cpp_build_options() -> dict[str, str]:
    """KERNEL_OPTIONS that are not OFF, as the installed llama-cpp-python was compiled ({} when its
    wheel has no ggml-config.cmake)."""
    try:
        files = metadata.distribution("llama-cpp-python").files or []
    except metadata.PackageNotFoundError:
        return {}
    config = next((f for f in files if str(f).endswith("cmake/ggml/ggml-config.cmake")), None)
    if config is None:
        return {}
    try:
        text = config.locate().read_text(errors="replace")
    except OSError:
        return {}
    found = dict(re.findall(r'^set\((GGML_\w+) "([^"]*)"\)', text, re.M))
    return {k: found[k] for k in KERNEL_OPTIONS if found.get(k, "OFF").upper() != "OFF"}
