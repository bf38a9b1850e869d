"""Print the CMAKE_ARGS llama-cpp-python should be compiled with on this machine.

GPU: with an NVIDIA toolchain (nvcc on PATH or in $CUDA_HOME/bin, default /usr/local/cuda) AND a visible GPU
(`nvidia-smi` reports its compute capability), the flags build llama.cpp's CUDA backend for
exactly that capability (-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=90 for 9.0). nvcc alone is not
enough: a build machine without a GPU would get a CUDA build it cannot run. Otherwise it is a
CPU build, said in one line on stderr. The flags are part of every wheel cache key (setup.sh).

CPU: llama.cpp compiles with -march=native, which turns on Intel AMX wherever the CPU advertises it.
Some virtual machines advertise AMX (and grant the permission) but fault on the first AMX
instruction, so every quantized matmul crashes with SIGILL/SIGSEGV. This script runs a tiny AMX
probe; where AMX is advertised but does not work, it prints explicit ggml feature flags for
every other extension the CPU has, with AMX left out. Elsewhere it prints nothing (native build).
A CMAKE_ARGS already set by the user always wins (setup.sh does not call this then).
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PROBE = r"""
#include <immintrin.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
struct cfg { unsigned char palette_id, start_row, reserved[14]; unsigned short colsb[16]; unsigned char rows[16]; } __attribute__((packed));
int main(void) {
  if (syscall(SYS_arch_prctl, 0x1023, 18)) return 2;
  struct cfg c; memset(&c, 0, sizeof c); c.palette_id = 1; c.rows[0] = 1; c.colsb[0] = 4;
  _tile_loadconfig(&c); _tile_zero(0); _tile_release();
  return 0;
}
"""

# /proc/cpuinfo flag -> ggml CMake option
FLAGS = [
    ("avx", "GGML_AVX"),
    ("avx2", "GGML_AVX2"),
    ("bmi2", "GGML_BMI2"),
    ("fma", "GGML_FMA"),
    ("f16c", "GGML_F16C"),
    ("avx_vnni", "GGML_AVX_VNNI"),
    ("avx512f", "GGML_AVX512"),
    ("avx512vbmi", "GGML_AVX512_VBMI"),
    ("avx512_vnni", "GGML_AVX512_VNNI"),
    ("avx512_bf16", "GGML_AVX512_BF16"),
]


def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def amx_works() -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        src, exe = Path(tmp) / "amx.c", Path(tmp) / "amx"
        src.write_text(PROBE)
        built = subprocess.run(
            ["gcc", "-O1", "-mamx-tile", str(src), "-o", str(exe)], capture_output=True
        )
        if built.returncode != 0:
            return True  # cannot tell; keep llama.cpp's own default
        return subprocess.run([str(exe)], capture_output=True).returncode == 0


def cpu_args() -> list[str]:
    if platform.machine() not in ("x86_64", "AMD64") or os.name != "posix":
        return []
    flags = cpu_flags()
    if "amx_tile" not in flags or amx_works():
        return []
    return ["-DGGML_NATIVE=OFF"] + [f"-D{opt}=ON" for flag, opt in FLAGS if flag in flags]


def find_nvcc() -> str | None:
    on_path = shutil.which("nvcc")
    if on_path:
        return on_path
    default = Path(os.environ.get("CUDA_HOME") or "/usr/local/cuda") / "bin" / "nvcc"
    return str(default) if default.is_file() and os.access(default, os.X_OK) else None


def gpu_compute_caps() -> list[str]:
    """Compute capabilities of the visible NVIDIA GPUs, e.g. ["90"]; [] when none is visible."""
    smi = shutil.which("nvidia-smi")
    if not smi:
        return []
    try:
        out = subprocess.run(
            [smi, "--query-gpu=compute_cap", "--format=csv,noheader"], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    if out.returncode != 0:
        return []
    caps = {ln.strip().replace(".", "") for ln in out.stdout.splitlines()}
    return sorted(c for c in caps if c.isdigit())


def cuda_args() -> list[str]:
    nvcc = find_nvcc()
    caps = gpu_compute_caps() if nvcc else []
    if not caps:
        return []
    args = ["-DGGML_CUDA=on", f"-DCMAKE_CUDA_ARCHITECTURES={';'.join(caps)}"]
    if not shutil.which("nvcc"):  # CMake looks on PATH; name the one found elsewhere
        args.append(f"-DCMAKE_CUDA_COMPILER={nvcc}")
    return args


def main() -> None:
    gpu = cuda_args()
    if not gpu:
        print("evalkit setup: no NVIDIA GPU/nvcc found, building for CPU", file=sys.stderr)
    opts = cpu_args() + gpu
    if opts:
        print(" ".join(opts))


if __name__ == "__main__":
    main()
