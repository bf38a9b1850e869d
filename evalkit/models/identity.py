"""File identity (sha256, size) and GGUF metadata: what every record says about the weights.

Hashing a 12 GB file takes a minute, so the digest is cached by (path, size, mtime): computed
once, reused until the file changes. Metadata comes from the `gguf` package, which also tells a
truncated or corrupt file apart from a good one before llama.cpp is asked to load it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from pathlib import Path

from pydantic import BaseModel

from evalkit.errors import ModelError
from evalkit.paths import cache_dir

_HASH_BLOCK = 8 * 1024 * 1024


class GgufInfo(BaseModel):
    """The GGUF facts that explain a model's speed, memory and quality."""

    architecture: str
    model_name: str | None = None
    parameter_count: int
    file_type: str  # e.g. "Q4_1", "Q8_0", "F16" (general.file_type, else the dominant tensor type)
    context_length: int | None = None
    n_layer: int | None = None
    n_embd: int | None = None
    n_head: int | None = None
    n_head_kv: int | None = None
    key_length: int | None = None
    value_length: int | None = None
    sliding_window: int | None = None
    n_vocab: int | None = None
    vocab_sha256: str | None = None  # identifies the tokenizer: same hash, same token ids
    add_bos: bool | None = None
    has_chat_template: bool = False
    tensor_types: dict[str, int] = {}  # tensor count per ggml type


def file_sha256(path: Path) -> str:
    """The file's sha256, from the cache when path, size and mtime are unchanged."""

    def compute() -> str:
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            while block := fh.read(_HASH_BLOCK):
                digest.update(block)
        return digest.hexdigest()

    return _cached_by_file("sha256", path, compute)


def gguf_info(path: Path) -> GgufInfo:
    """Read metadata and check the tensor data fits in the file (a truncated copy fails here).

    Parsing a 262,144-token vocabulary with `gguf` takes seconds, so the result is cached on
    disk like the digest.
    """
    data = _cached_by_file("gguf_info", path, lambda: _read_gguf_info(path).model_dump())
    return GgufInfo.model_validate(data)


def _cached_by_file(store_name: str, path: Path, compute):
    st = path.stat()
    key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    store = cache_dir() / f"{store_name}.json"
    cached = _read_json(store)
    if key in cached:
        return cached[key]
    value = compute()
    cached = _read_json(store)  # re-read: another process may have added entries meanwhile
    cached[key] = value
    _write_json_atomic(store, cached)
    return value


def _read_gguf_info(path: Path) -> GgufInfo:
    from gguf import GGUFReader, GGMLQuantizationType, LlamaFileType

    size = path.stat().st_size
    try:
        reader = GGUFReader(path, "r")
    except Exception as exc:  # gguf raises ValueError, struct.error, IndexError ... on junk
        raise ModelError(
            f"{path} is not a valid GGUF file (truncated or corrupt: {_short(exc)})"
        ) from None

    end = max((t.data_offset + t.n_bytes for t in reader.tensors), default=0)
    if end > size or not reader.tensors:
        raise ModelError(
            f"{path} is truncated or corrupt: tensor data needs {end} bytes, file has {size}"
        )

    def field(key: str):
        f = reader.fields.get(key)
        if f is None or not f.data:
            return None
        return f.contents()

    arch = field("general.architecture") or "unknown"
    type_counts = Counter(GGMLQuantizationType(t.tensor_type).name for t in reader.tensors)
    ftype_raw = field("general.file_type")
    try:
        ftype = LlamaFileType(int(ftype_raw)).name.removeprefix("MOSTLY_").removeprefix("ALL_")
    except (TypeError, ValueError):
        ftype = _dominant_weight_type(reader)
    params = sum(int(t.n_elements) for t in reader.tensors)

    tokens_field = reader.fields.get("tokenizer.ggml.tokens")
    n_vocab = len(tokens_field.data) if tokens_field is not None else None
    vocab_hash = None
    if tokens_field is not None:
        h = hashlib.sha256()
        for idx in tokens_field.data:
            h.update(bytes(tokens_field.parts[idx]))
            h.update(b"\0")
        vocab_hash = h.hexdigest()

    def arch_int(suffix: str) -> int | None:
        v = field(f"{arch}.{suffix}")
        if isinstance(v, list):  # per-layer values (e.g. Gemma's head counts)
            v = max(v) if v else None
        return int(v) if v is not None else None

    add_bos = field("tokenizer.ggml.add_bos_token")
    return GgufInfo(
        architecture=str(arch),
        model_name=field("general.name"),
        parameter_count=params,
        file_type=ftype,
        context_length=arch_int("context_length"),
        n_layer=arch_int("block_count"),
        n_embd=arch_int("embedding_length"),
        n_head=arch_int("attention.head_count"),
        n_head_kv=arch_int("attention.head_count_kv"),
        key_length=arch_int("attention.key_length"),
        value_length=arch_int("attention.value_length"),
        sliding_window=arch_int("attention.sliding_window"),
        n_vocab=n_vocab,
        vocab_sha256=vocab_hash,
        add_bos=bool(add_bos) if add_bos is not None else None,
        has_chat_template=reader.fields.get("tokenizer.chat_template") is not None,
        tensor_types=dict(type_counts),
    )


def _dominant_weight_type(reader) -> str:
    from gguf import GGMLQuantizationType

    weights = Counter()
    for t in reader.tensors:
        if len(t.shape) >= 2:
            weights[GGMLQuantizationType(t.tensor_type).name] += int(t.n_elements)
    return weights.most_common(1)[0][0] if weights else "unknown"


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"[:200]


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _write_json_atomic(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=0, sort_keys=True))
    os.replace(tmp, path)
