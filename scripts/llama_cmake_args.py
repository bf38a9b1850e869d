"""Print the CMAKE_ARGS llama-cpp-python should be compiled with on this machine.

llama.cpp compiles with -march=native, which turns on Intel AMX wherever the CPU advertises it.
Some virtual machines advertise AMX (and grant the permission) but fault on the first AMX
instruction, so every quantized matmul crashes with SIGILL/SIGSEGV. This script runs a tiny AMX
probe; where AMX is advertised but does not work, it prints explicit ggml feature flags for
every other extension the CPU has, with AMX left out. Elsewhere it prints nothing (native build).
A CMAKE_ARGS already set by the user always wins (setup.sh does not call this then).
"""

from __future__ import annotations

import os
import platform
import subprocess
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


def main() -> None:
    if platform.machine() not in ("x86_64", "AMD64") or os.name != "posix":
        return
    flags = cpu_flags()
    if "amx_tile" not in flags or amx_works():
        return
    opts = ["-DGGML_NATIVE=OFF"] + [f"-D{opt}=ON" for flag, opt in FLAGS if flag in flags]
    print(" ".join(opts))


if __name__ == "__main__":
    main()
