"""scripts/llama_cmake_args.py: CUDA flags only with nvcc AND a visible GPU, else a CPU build.

The NVIDIA tools are stand-ins (shell scripts on a private PATH) answering as the real ones do:
this tests the detection logic, not CUDA; a CUDA build itself needs a machine with a GPU.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "llama_cmake_args.py"
NOTICE = "evalkit setup: no NVIDIA GPU/nvcc found, building for CPU"


def stub(bindir: Path, name: str, body: str) -> None:
    bindir.mkdir(parents=True, exist_ok=True)
    (bindir / name).write_text(f"#!/bin/sh\n{body}\n")
    (bindir / name).chmod(0o755)


def cmake_args(tmp_path: Path, bindir: Path) -> tuple[str, str]:
    env = {"PATH": f"{bindir}:/usr/bin:/bin", "CUDA_HOME": str(tmp_path / "no-cuda"), "HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip(), out.stderr.strip()


def test_no_nvidia_tools_is_a_cpu_build_with_a_notice(tmp_path):
    args, err = cmake_args(tmp_path, tmp_path / "bin")
    assert "GGML_CUDA" not in args
    assert err.splitlines() == [NOTICE]


def test_nvcc_and_a_visible_gpu_build_cuda_for_its_compute_capability(tmp_path):
    bindir = tmp_path / "bin"
    cpu, _ = cmake_args(tmp_path, bindir)
    stub(bindir, "nvcc", "echo 'Cuda compilation tools, release 12.4'")
    stub(bindir, "nvidia-smi", '[ "$1" = "--query-gpu=compute_cap" ] && [ "$2" = "--format=csv,noheader" ] && echo 9.0')
    args, err = cmake_args(tmp_path, bindir)
    assert args == " ".join(filter(None, [cpu, "-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=90"]))
    assert NOTICE not in err
    # two kinds of GPU: both capabilities, once each
    stub(bindir, "nvidia-smi", "printf '8.6\\n9.0\\n8.6\\n'")
    assert cmake_args(tmp_path, bindir)[0].endswith("-DCMAKE_CUDA_ARCHITECTURES=86;90")


def test_nvcc_outside_path_is_named_to_cmake(tmp_path):
    bindir = tmp_path / "bin"
    stub(bindir, "nvidia-smi", "echo 8.9")
    stub(tmp_path / "cuda" / "bin", "nvcc", "true")
    env = {"PATH": f"{bindir}:/usr/bin:/bin", "CUDA_HOME": str(tmp_path / "cuda"), "HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, env=env, timeout=120)
    assert out.stdout.split()[-3:] == [
        "-DGGML_CUDA=on", "-DCMAKE_CUDA_ARCHITECTURES=89", f"-DCMAKE_CUDA_COMPILER={tmp_path / 'cuda' / 'bin' / 'nvcc'}"
    ]


def test_nvcc_without_a_visible_gpu_stays_cpu(tmp_path):
    """This machine's case: the CUDA toolkit is installed but no GPU (nvidia-smi fails or is absent)."""
    bindir = tmp_path / "bin"
    stub(bindir, "nvcc", "true")
    assert cmake_args(tmp_path, bindir) == cmake_args(tmp_path, tmp_path / "other")  # no nvidia-smi at all
    stub(bindir, "nvidia-smi", "echo 'NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver.'; exit 9")
    args, err = cmake_args(tmp_path, bindir)
    assert "GGML_CUDA" not in args and err.splitlines() == [NOTICE]


def test_the_wheel_cache_key_holds_the_build_flavour():
    """setup.sh's key line, run by bash: a CUDA build gets its own wheel; a CPU build keeps the key
    it always had (sha256 of "<version> <CMAKE_ARGS> <python (major, minor)>")."""
    line = next(ln for ln in (ROOT / "scripts" / "setup.sh").read_text().splitlines() if ln.startswith("wheel_key="))

    def key(flags: str) -> str:
        env = {"PATH": "/usr/bin:/bin", "LLAMA_VERSION": "0.3.36", "CMAKE_ARGS": flags, "PY": sys.executable}
        out = subprocess.run(["bash", "-c", f'{line}; echo "$wheel_key"'], capture_output=True, text=True, env=env)
        return out.stdout.strip()

    py = f"({sys.version_info[0]}, {sys.version_info[1]})"
    assert key("") == hashlib.sha256(f"0.3.36  {py}\n".encode()).hexdigest()[:16]
    cuda = "-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=90"
    assert key(cuda) == hashlib.sha256(f"0.3.36 {cuda} {py}\n".encode()).hexdigest()[:16] != key("")
