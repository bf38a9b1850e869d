"""Where llama.cpp's own tools (llama-server, llama-bench, llama-perplexity) are on this machine.

`bash scripts/llama-tools.sh` builds them from the llama.cpp that the installed llama-cpp-python
vendors, with the same CMake flags, into ~/.cache/evalkit/llama-tools/<version>-<flags hash>/
build/bin (EVALKIT_LLAMA_TOOLS overrides the root). The backend, the benchmarks and the tests
all look here first, so they run the same kernels as the in-process backend; a tool on PATH is
the fallback.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from importlib import metadata
from pathlib import Path

BUILD_COMMAND = "bash scripts/llama-tools.sh"


def tools_root() -> Path:
    default = Path.home() / ".cache" / "evalkit" / "llama-tools"
    return Path(os.environ.get("EVALKIT_LLAMA_TOOLS") or default).expanduser()


def _llama_cpp_version() -> str | None:
    try:
        return metadata.version("llama-cpp-python")
    except metadata.PackageNotFoundError:
        return None


def built_tool(name: str) -> Path | None:
    """`name` from scripts/llama-tools.sh's cache: the installed llama-cpp-python's version first,
    then any other, newest build first."""
    found = [p for p in tools_root().glob(f"*/build/bin/{name}") if p.is_file() and os.access(p, os.X_OK)]
    version = _llama_cpp_version()

    def rank(p: Path) -> tuple[bool, float]:
        same_version = version is not None and p.parents[2].name.startswith(f"{version}-")
        return (same_version, p.stat().st_mtime)

    return max(found, key=rank) if found else None


def find_tool(name: str) -> Path | None:
    """The built `name`, else `name` on PATH, else None."""
    built = built_tool(name)
    if built is not None:
        return built
    on_path = shutil.which(name)
    return Path(on_path) if on_path else None


def not_found_message(name: str, or_else: str = "put it on PATH") -> str:
    return f"{name} not found: build it once with `{BUILD_COMMAND}` (in the evalkit repository) or {or_else}"


def build_tools(repo_root: Path) -> Path:
    """Run scripts/llama-tools.sh (builds once, then only prints) and return its bin directory."""
    out = subprocess.run(
        ["bash", str(repo_root / "scripts" / "llama-tools.sh")], capture_output=True, text=True
    )
    if out.returncode != 0 or not out.stdout.strip():
        raise RuntimeError(f"{BUILD_COMMAND} failed: {out.stderr.strip()[-500:]}")
    return Path(out.stdout.strip().splitlines()[-1])
