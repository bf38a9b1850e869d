"""Quantization ladders: every variant of one model, built with llama.cpp's own quantizer.

A variant is keyed by the base file's sha256 and the target type, so it is built once and then
found again. A quantized base (the embedded Q4_1, a vendor Q4_0) is first dequantized to f16 with
`allow_requantize`: every variant then descends from the same f16, and the provenance string says
that this f16 is *not* the original training precision.
"""

from __future__ import annotations

import os
from pathlib import Path

from evalkit.errors import ModelError
from evalkit.paths import cache_dir

# Types llama_model_quantize can target, by the names llama-quantize accepts (lower case).
QUANT_TYPES: dict[str, str] = {
    "f32": "LLAMA_FTYPE_ALL_F32",
    "f16": "LLAMA_FTYPE_MOSTLY_F16",
    "bf16": "LLAMA_FTYPE_MOSTLY_BF16",
    "q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0",
    "q6_k": "LLAMA_FTYPE_MOSTLY_Q6_K",
    "q5_k_m": "LLAMA_FTYPE_MOSTLY_Q5_K_M",
    "q5_k_s": "LLAMA_FTYPE_MOSTLY_Q5_K_S",
    "q5_1": "LLAMA_FTYPE_MOSTLY_Q5_1",
    "q5_0": "LLAMA_FTYPE_MOSTLY_Q5_0",
    "q4_k_m": "LLAMA_FTYPE_MOSTLY_Q4_K_M",
    "q4_k_s": "LLAMA_FTYPE_MOSTLY_Q4_K_S",
    "q4_1": "LLAMA_FTYPE_MOSTLY_Q4_1",
    "q4_0": "LLAMA_FTYPE_MOSTLY_Q4_0",
    "iq4_nl": "LLAMA_FTYPE_MOSTLY_IQ4_NL",
    "iq4_xs": "LLAMA_FTYPE_MOSTLY_IQ4_XS",
    "q3_k_l": "LLAMA_FTYPE_MOSTLY_Q3_K_L",
    "q3_k_m": "LLAMA_FTYPE_MOSTLY_Q3_K_M",
    "q3_k_s": "LLAMA_FTYPE_MOSTLY_Q3_K_S",
    "q2_k": "LLAMA_FTYPE_MOSTLY_Q2_K",
}
FLOAT_TYPES = {"F32", "F16", "BF16"}


def normalize_quant(name: str) -> str:
    key = name.strip().lower()
    if key not in QUANT_TYPES:
        raise ModelError(f"unknown quant type '{name}'; known: {', '.join(QUANT_TYPES)}")
    return key


def ladder_path(base: Path, base_sha256: str, quant: str) -> Path:
    return cache_dir() / "ladder" / base_sha256[:16] / f"{base.stem}.{quant}.gguf"


def build_variant(base: Path, base_sha256: str, quant: str) -> Path:
    """Path of `base` quantized to `quant`, built (atomically) only if not already cached."""
    quant = normalize_quant(quant)
    target = ladder_path(base, base_sha256, quant)
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in target.parent.glob(f".{target.name}.*.tmp"):  # left by a killed build
        _remove_if_dead(stale)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        _quantize(base, tmp, quant)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _quantize(src: Path, dst: Path, quant: str) -> None:
    from evalkit.backends.llama_cpp.native import quantize  # its per-tensor log goes to the buffer

    rc = quantize(src, dst, QUANT_TYPES[quant])
    if rc != 0 or not dst.is_file():
        raise ModelError(f"llama_model_quantize failed ({rc}) turning {src.name} into {quant}")


def _remove_if_dead(tmp: Path) -> None:
    pid = tmp.name.rsplit(".", 2)[-2]
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        tmp.unlink(missing_ok=True)
    except PermissionError:
        pass
