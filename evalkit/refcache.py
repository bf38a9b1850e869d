"""The reference's distributions, stored once and reused for every candidate of a ladder.

llama-perplexity keeps 2 bytes x n_vocab per scored token (512 KB a token for Gemma's 262,144
tokens). evalkit keeps, per scored token, the top-K log-probabilities (fp16) with their token ids,
the log of the mass outside the top K, M tokens sampled from that tail with their float32
log-probs, and the exact log-probability of the actual next token: PPL_ref, same-top and
delta-p stay exact; KLD's top-K part is exact up to fp16 and the tail's own divergence is
estimated without bias from the samples (top-K alone misses 10-13% of SmolLM2's KLD; measured
in docs/kld.md). An exact mode keeps the full float32 log-probs, for validation only.

File: magic, a 4 KiB JSON header slot (key, layout, payload sha256), then one fixed-size record
per chunk (the chunk's tokens as decoded, then the scored rows). Written to a temporary name and
renamed; on open the header must match the expected key and the payload its digest, otherwise
the file is reported and rebuilt, never used.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ValidationError

from evalkit.metrics.kld import ReferenceRows
from evalkit.paths import cache_dir
from evalkit.records import now_iso, stable_hash

MAGIC = b"EVKREF\x00\x01"
VERSION = 1
HEADER_SLOT = 4096  # bytes reserved for magic + length + header JSON
_READ_BLOCK = 8 * 1024 * 1024
_ROW_FIELDS = tuple(f.name for f in fields(ReferenceRows))  # top_ids, top_lp, ..., full_lp


class RowSettings(BaseModel):
    """What both caches' rows depend on besides the text: what is kept of each row (K, M, exact)
    and the KV-cache settings that computed it. Keys hash with sorted fields (stable_hash), so
    sharing these does not change a cache file's name."""

    top_k: int
    tail_samples: int
    exact: bool
    type_k: str = "f16"
    type_v: str = "f16"
    flash_attn: bool = False


def row_settings(cfg) -> dict[str, Any]:
    """A task=kld run's RowSettings: its task's K, M and exact mode, its backend's KV cache."""
    task, backend = cfg.task, cfg.backend
    return dict(top_k=task.top_k, tail_samples=task.tail_samples, exact=task.exact,
                type_k=backend.type_k, type_v=backend.type_v, flash_attn=backend.flash_attn)


class CacheKey(RowSettings):
    """Everything the stored reference depends on: change one, get another file."""

    reference_sha256: str
    corpus_sha256: str
    n_ctx: int
    chunks: int | None  # as asked (None: the whole corpus)


class CacheHeader(BaseModel):
    version: int = VERSION
    key: CacheKey
    reference: str  # human label of the reference model
    n_vocab: int
    n_chunks: int
    first: int  # first scored logit row of a chunk (n_ctx // 2)
    n_rows: int  # scored rows per chunk (n_ctx - 1 - first)
    top_k: int  # effective K (min(K, n_vocab))
    tail_samples: int  # M
    id_dtype: str  # "uint16" when the vocabulary fits, else "int32"
    add_bos: bool
    corpus_tokens: int
    created_at: str
    build_s: float | None = None
    payload_bytes: int = 0
    payload_sha256: str = ""


def cache_path(key: CacheKey) -> Path:
    return cache_dir() / "kldref" / f"{key.reference_sha256[:12]}-{stable_hash(key.model_dump(), 16)}.evkref"


@dataclass(frozen=True)
class Layout:
    """Byte layout of one chunk record."""

    n_ctx: int
    n_rows: int
    top_k: int
    n_vocab: int
    id_dtype: str
    exact: bool
    tail_samples: int = 0

    def fields(self) -> list[tuple[str, str, tuple[int, ...]]]:
        f = [
            ("tokens", "int32", (self.n_ctx,)),
            ("top_ids", self.id_dtype, (self.n_rows, self.top_k)),
            ("top_lp", "float16", (self.n_rows, self.top_k)),
            ("log_rest", "float32", (self.n_rows,)),
            ("lp_next", "float32", (self.n_rows,)),
            ("tail_ids", self.id_dtype, (self.n_rows, self.tail_samples)),
            ("tail_lp", "float32", (self.n_rows, self.tail_samples)),
        ]
        if self.exact:
            f.append(("full_lp", "float32", (self.n_rows, self.n_vocab)))
        return f

    @property
    def record_bytes(self) -> int:
        return sum(np.dtype(d).itemsize * int(np.prod(s)) for _, d, s in self.fields())

    @classmethod
    def of(cls, h: CacheHeader) -> "Layout":
        return cls(h.key.n_ctx, h.n_rows, h.top_k, h.n_vocab, h.id_dtype, h.key.exact, h.tail_samples)


class ChunkRecord:
    """One chunk of the reference: views into the mapped file."""

    def __init__(self, arrays: dict[str, np.ndarray]):
        self.tokens = arrays["tokens"]
        self.rows = ReferenceRows(**{f: arrays.get(f) for f in _ROW_FIELDS})  # full_lp: exact mode only


class RefCache:
    """A verified cache file, mapped read-only."""

    def __init__(self, path: Path, header: CacheHeader):
        self.path = path
        self.header = header
        self.layout = Layout.of(header)
        self._map = np.memmap(path, dtype=np.uint8, mode="r", offset=HEADER_SLOT,
                              shape=(header.payload_bytes,))

    @property
    def n_chunks(self) -> int:
        return self.header.n_chunks

    def chunk(self, i: int) -> ChunkRecord:
        base = i * self.layout.record_bytes
        arrays: dict[str, np.ndarray] = {}
        off = base
        for name, dtype, shape in self.layout.fields():
            n = np.dtype(dtype).itemsize * int(np.prod(shape))
            arrays[name] = self._map[off : off + n].view(dtype).reshape(shape)
            off += n
        return ChunkRecord(arrays)

    @property
    def size_bytes(self) -> int:
        return self.path.stat().st_size

    def close(self) -> None:
        mm = getattr(self._map, "_mmap", None)
        self._map = None  # type: ignore[assignment]
        if mm is not None:
            mm.close()


def open_cache(path: Path, key: CacheKey) -> tuple[RefCache | None, str | None]:
    """(cache, None) when the file is there and sound; (None, why) when it must be (re)built.

    why is None for a plain miss, a sentence for a file that exists but cannot be trusted.
    """
    if not path.is_file():
        return None, None
    try:
        header = _read_header(path)
    except ValueError as exc:
        return None, str(exc)
    if header.key != key:
        return None, "its header belongs to another reference/corpus/setting"
    expected = HEADER_SLOT + header.payload_bytes
    size = path.stat().st_size
    if size != expected:
        return None, f"it is {size} bytes, its header says {expected} (truncated?)"
    if header.payload_bytes != Layout.of(header).record_bytes * header.n_chunks:
        return None, "its header describes an inconsistent layout"
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        fh.seek(HEADER_SLOT)
        while block := fh.read(_READ_BLOCK):
            digest.update(block)
    if digest.hexdigest() != header.payload_sha256:
        return None, "its payload does not match the sha256 in its header (corrupt)"
    return RefCache(path, header), None


def _read_header(path: Path) -> CacheHeader:
    with path.open("rb") as fh:
        head = fh.read(HEADER_SLOT)
    if len(head) < len(MAGIC) + 4 or head[: len(MAGIC)] != MAGIC:
        raise ValueError("it is not an evalkit reference cache (bad magic)")
    n = int.from_bytes(head[len(MAGIC) : len(MAGIC) + 4], "little")
    raw = head[len(MAGIC) + 4 : len(MAGIC) + 4 + n]
    if n <= 0 or len(raw) != n:
        raise ValueError("its header is cut short")
    try:
        data: dict[str, Any] = json.loads(raw)
        header = CacheHeader.model_validate(data)
    except (ValueError, ValidationError):
        raise ValueError("its header does not parse") from None
    if header.version != VERSION:
        raise ValueError(f"it is format version {header.version}, this evalkit writes {VERSION}")
    return header


class CacheWriter:
    """Streams chunk records to a temporary file; `finish` seals the header and renames it."""

    def __init__(self, path: Path, header: CacheHeader):
        self.path = path
        self.header = header
        self.layout = Layout.of(header)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        self._fh = self.tmp.open("wb")
        self._fh.write(b"\0" * HEADER_SLOT)
        self._digest = hashlib.sha256()
        self._bytes = 0
        self._chunks = 0

    def add(self, tokens: np.ndarray, rows: ReferenceRows) -> None:
        arrays = {"tokens": tokens, **{f: getattr(rows, f) for f in _ROW_FIELDS}}
        for name, dtype, shape in self.layout.fields():
            a = np.ascontiguousarray(arrays[name], dtype=dtype)
            if a.shape != shape:
                raise ValueError(f"reference record field {name} has shape {a.shape}, expected {shape}")
            buf = a.tobytes()
            self._fh.write(buf)
            self._digest.update(buf)
            self._bytes += len(buf)
        self._chunks += 1

    def finish(self, build_s: float) -> RefCache:
        h = self.header.model_copy(
            update={
                "payload_bytes": self._bytes,
                "payload_sha256": self._digest.hexdigest(),
                "n_chunks": self._chunks,
                "build_s": round(build_s, 3),
                "created_at": now_iso(),
            }
        )
        raw = h.model_dump_json().encode()
        if len(MAGIC) + 4 + len(raw) > HEADER_SLOT:
            raise ValueError("reference cache header does not fit its slot")
        self._fh.seek(0)
        self._fh.write(MAGIC + len(raw).to_bytes(4, "little") + raw)
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        os.replace(self.tmp, self.path)
        return RefCache(self.path, h)

    def abort(self) -> None:
        if not self._fh.closed:
            self._fh.close()
        self.tmp.unlink(missing_ok=True)


def remove_stale_tmp(directory: Path) -> None:
    """Temporary files of builds whose process is gone (killed mid-build)."""
    if not directory.is_dir():
        return
    for tmp in directory.glob(".*.tmp"):
        try:
            pid = int(tmp.name.rsplit(".", 2)[-2])
            os.kill(pid, 0)
        except (ValueError, ProcessLookupError):
            tmp.unlink(missing_ok=True)
        except PermissionError:
            pass


# ---------------------------------------------------------------------------- responses:<task>


class ResponsesKey(RowSettings):
    """What the reference's answers to a task's prompts (and its distributions on them) depend on."""

    reference_sha256: str
    task_sha256: str
    prompts: list[str]
    seeds: list[int]
    sampling: dict[str, Any]
    chat_template: bool
    system_prompt: str | None = None


def responses_path(key: ResponsesKey) -> Path:
    return cache_dir() / "kldref" / f"{key.reference_sha256[:12]}-responses-{stable_hash(key.model_dump(), 16)}.npz"


class ResponsesCache:
    """The reference's answers as token ids (prompt + answer) with its distributions at the answer rows."""

    def __init__(self, path: Path, header: dict[str, Any], arrays: dict[str, np.ndarray]):
        self.path = path
        self.header = header
        self._a = arrays
        off = arrays["seq_offsets"]
        self.seqs = [arrays["tokens"][off[i] : off[i + 1]] for i in range(len(off) - 1)]
        self.firsts = [int(f) for f in arrays["firsts"]]
        self._rows = arrays["row_offsets"]

    def rows(self, i: int) -> ReferenceRows:
        s = slice(int(self._rows[i]), int(self._rows[i + 1]))
        return ReferenceRows(**{f: (self._a[f][s] if f in self._a else None) for f in _ROW_FIELDS})

    @property
    def size_bytes(self) -> int:
        return self.path.stat().st_size


def write_responses(path: Path, header: dict[str, Any], seqs: list[np.ndarray], firsts: list[int],
                    rows: list[ReferenceRows]) -> ResponsesCache:
    """Written to a temporary name and renamed: a killed build never leaves a half file behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = {**header, "version": VERSION, "created_at": now_iso()}
    joined = ReferenceRows.concat(rows)
    id_dtype = np.uint16 if header["n_vocab"] <= 65536 else np.int32
    arrays: dict[str, np.ndarray] = {
        "header": np.frombuffer(json.dumps(header).encode(), dtype=np.uint8),
        "tokens": np.concatenate(seqs).astype(np.int32),
        "seq_offsets": np.concatenate([[0], np.cumsum([len(s) for s in seqs])]).astype(np.int64),
        "firsts": np.asarray(firsts, dtype=np.int64),
        "row_offsets": np.concatenate([[0], np.cumsum([len(r.lp_next) for r in rows])]).astype(np.int64),
    }
    for f in _ROW_FIELDS:
        a = getattr(joined, f)
        if a is not None:
            arrays[f] = a.astype(id_dtype) if f in ("top_ids", "tail_ids") else a
    tmp = path.parent / f".{path.name}.{os.getpid()}.tmp"
    try:
        with tmp.open("wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return ResponsesCache(path, header, arrays)


def read_responses(path: Path, key: ResponsesKey) -> tuple[ResponsesCache | None, str | None]:
    """(cache, None) when the file is there and sound; (None, why) when it must be rebuilt."""
    if not path.is_file():
        return None, None
    try:
        with np.load(path) as z:
            arrays = {k: z[k] for k in z.files}  # zip CRCs are checked as each array is read
        header = json.loads(arrays["header"].tobytes())
    except Exception as exc:  # a truncated or corrupt file, whatever numpy says about it
        return None, f"it cannot be read ({type(exc).__name__})"
    if header.get("version") != VERSION or header.get("key") != key.model_dump(mode="json"):
        return None, "its header belongs to another reference/task/sampling/setting"
    return ResponsesCache(path, header, arrays), None
