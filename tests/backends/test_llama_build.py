"""The build flavour every record carries: read from the real installed llama-cpp-python."""

import llama_cpp
import pytest

from evalkit.backends.llama_cpp import LlamaCppBackend
from evalkit.config import LlamaCppBackendConfig
from evalkit.llama_build import flavour_from_names, llama_cpp_build_options


@pytest.mark.parametrize(
    "text, flavour",
    [
        # llama_print_system_info() of a CPU and of a CUDA build
        ("CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | OPENMP = 1 | REPACK = 1 | ", "cpu"),
        ("CUDA : ARCHS = 900 | USE_GRAPHS = 1 | PEER_MAX_BATCH_SIZE = 128 | CPU : SSE3 = 1 | AVX2 = 1 | ", "cuda"),
        # llama-server --list-devices
        ("Available devices:\n", "cpu"),
        ("Available devices:\n  CUDA0: NVIDIA H200 (143167 MiB, 142638 MiB free)\n", "cuda"),
        ("Available devices:\n  Vulkan0: AMD Radeon RX 7900 XTX (24560 MiB, 24000 MiB free)\n", "vulkan"),
    ],
)
def test_flavour_from_what_llama_cpp_prints(text, flavour):
    assert flavour_from_names(text) == flavour


@pytest.mark.slow
def test_the_in_process_backend_records_its_build(smollm2_path):
    backend = LlamaCppBackend(LlamaCppBackendConfig(n_ctx=256, n_threads=1), str(smollm2_path))
    try:
        info = backend.info()
    finally:
        backend.close()
    options = llama_cpp_build_options()
    backends = options["GGML_AVAILABLE_BACKENDS"].split(";")
    assert "ggml-cpu" in backends and options["GGML_BUILD_COMMIT"]
    assert info.extra["build_options"] == options
    gpu = bool(llama_cpp.llama_supports_gpu_offload())
    assert (info.flavour != "cpu") == gpu
    if gpu:  # the flavour is the GPU backend the wheel was compiled with
        assert f"ggml-{info.flavour}" in backends
    # n_gpu_layers' default: every layer on a GPU build, none on a CPU build
    assert info.settings["n_gpu_layers"] == (-1 if gpu else 0) and info.gpu_offload == gpu
