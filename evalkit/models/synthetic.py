"""Synthetic models: tiny random-weight GGUFs of a real architecture, built on first use.

`gemma4_tiny` is a scaled-down dense `gemma4` target (per-layer-type attention, sliding window,
proportional RoPE, logit soft-capping) and `gemma4_tiny_assistant` its `gemma4-assistant`
multi-token-prediction drafter, which reads the target's KV cache. They let a user check that
their llama.cpp build runs Gemma 4 and MTP end to end before downloading gigabytes, and let the
tests do the same offline. Their weights are random: they are structural stand-ins, not
language models, and every record says so.

The tokenizer is the Gemma 3 one from the embedded Gemma 3 270M GGUF, truncated to its first
`n_vocab` entries (every special, byte and chat token has an id below 500), with its Gemma 3
chat template: Gemma 3's vocabulary has no Gemma 4 turn tokens.

The weights are built so that MTP drafting is partly right: the target's output head is
E_d @ A (E_d the drafter's token embedding, A a random projection) behind an exact-1 output
norm and small residual-branch norms, and the drafter's pre-projection starts with A. Both then
follow the same random bigram map, which the target's context perturbs: acceptance lands well
between 0 and 100%, so both the accept and the reject path of the verify loop run.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import struct
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from evalkit.errors import ModelError
from evalkit.paths import cache_dir

# Bump when the construction changes: it is part of the cache key.
BUILDER_VERSION = 1


@dataclass(frozen=True)
class Gemma4TinySpec:
    """Everything the two files depend on (with the tokenizer source's sha256: the cache key)."""

    n_vocab: int = 8192
    n_embd: int = 128
    n_layer: int = 6  # the last full attention, the one before it sliding (the drafter reads both)
    n_head: int = 4
    n_ff: int = 256
    sliding_window: int = 128
    head_dim_swa: int = 32
    n_head_kv_swa: int = 2
    head_dim_full: int = 64
    n_head_kv_full: int = 1
    partial_rotary_full: float = 0.25
    context_length: int = 8192
    softcap: float = 30.0
    rms_eps: float = 1e-6
    # The drafter
    d_embd: int = 64
    d_layer: int = 4  # pattern sliding, sliding, sliding, full
    d_ff: int = 128
    # The construction's scales (see the module docstring)
    target_branch_norm: float = 0.03
    drafter_branch_norm: float = 0.01
    # Scales the target's head (logit sd ~2 instead of ~11): same argmax, a less certain
    # distribution, so perplexity on real text is of the order of the vocabulary, not 1e12.
    head_scale: float = 0.2
    seed: int = 0


@dataclass(frozen=True)
class Synthetic:
    role: str  # "target" | "drafter"
    note: str  # what the weights are, honestly (goes into the run's records)


NOTE = (
    "RANDOM WEIGHTS: synthetic structural stand-in for Gemma 4 (tiny {arch}, built by evalkit "
    "with a truncated Gemma 3 tokenizer); its outputs and scores mean nothing about any real model"
)

SYNTHETIC: dict[str, Synthetic] = {
    "gemma4_tiny": Synthetic("target", NOTE.format(arch="gemma4 target")),
    "gemma4_tiny_assistant": Synthetic("drafter", NOTE.format(arch="gemma4-assistant MTP drafter")),
}


def synthetic_path(key: str) -> Path:
    """The GGUF of a synthetic model, building the pair into the cache on first use."""
    if key not in SYNTHETIC:
        raise ModelError(f"unknown synthetic model '{key}'; known: {', '.join(sorted(SYNTHETIC))}")
    target, drafter = build_gemma4_tiny()
    return target if SYNTHETIC[key].role == "target" else drafter


def build_gemma4_tiny(spec: Gemma4TinySpec = Gemma4TinySpec()) -> tuple[Path, Path]:
    """(target, drafter) paths; built once per builder inputs, atomically, then reused."""
    from evalkit.models.embedded import EMBEDDED, embedded_path, embedded_sha256

    tokenizer_sha = embedded_sha256("gemma3_270m")
    key = hashlib.sha256(
        json.dumps(
            {"builder": BUILDER_VERSION, "spec": asdict(spec), "tokenizer": tokenizer_sha},
            sort_keys=True,
        ).encode()
    ).hexdigest()[:16]
    folder = cache_dir() / "synthetic" / f"gemma4_tiny-{key}"
    target, drafter = folder / "gemma4-tiny.gguf", folder / "gemma4-tiny-assistant.gguf"
    if target.is_file() and drafter.is_file():
        return target, drafter
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = read_tokenizer(embedded_path("gemma3_270m"), spec.n_vocab)
    tokenizer["source"] = f"{EMBEDDED['gemma3_270m'].filename} sha256 {tokenizer_sha}"
    weights = _Weights(spec)
    # The drafter first: a reader that sees the target file complete finds the drafter too.
    _write_atomic(drafter, lambda p: _write_drafter(p, spec, tokenizer, weights))
    _write_atomic(target, lambda p: _write_target(p, spec, tokenizer, weights))
    return target, drafter


# ------------------------------------------------------------------------------ tokenizer


def read_tokenizer(path: Path, n_vocab: int) -> dict:
    """The first n_vocab tokens of a SentencePiece GGUF's vocabulary and its other tokenizer keys.

    Reads the GGUF header's key-value section directly: gguf's GGUFReader builds a numpy view
    per array element, which for 262,144 tokens takes most of a minute on a busy machine.
    """
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        if mm[:4] != b"GGUF":
            raise ModelError(f"{path.name} is not a GGUF file")
        (n_kv,) = struct.unpack_from("<Q", mm, 16)
        pos = 24
        out: dict = {"arrays": {}, "scalars": {}}
        for _ in range(n_kv):
            key, pos = _read_str(mm, pos)
            (kind,) = struct.unpack_from("<I", mm, pos)
            pos += 4
            if kind == _ARRAY:
                sub, count = struct.unpack_from("<IQ", mm, pos)
                pos += 12
                keep = min(count, n_vocab) if key.startswith("tokenizer.") else 0
                values, pos = _read_array(mm, pos, sub, count, keep)
                if key.startswith("tokenizer."):
                    out["arrays"][key] = (sub, values)
            else:
                value, pos = _read_value(mm, pos, kind)
                if key.startswith("tokenizer."):
                    out["scalars"][key] = (kind, value)
    tokens = out["arrays"].get("tokenizer.ggml.tokens", (None, []))[1]
    if len(tokens) < n_vocab:
        raise ModelError(f"{path.name} has {len(tokens)} tokens, fewer than the {n_vocab} asked for")
    for name, (_, value) in out["scalars"].items():
        if name.endswith("_token_id") and isinstance(value, int) and value >= n_vocab:
            raise ModelError(f"{name}={value} is outside the first {n_vocab} tokens of {path.name}")
    return out


_ARRAY, _STRING = 9, 8
_FIXED = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}


def _read_str(mm, pos: int) -> tuple[str, int]:
    (n,) = struct.unpack_from("<Q", mm, pos)
    return mm[pos + 8 : pos + 8 + n].decode("utf-8"), pos + 8 + n


def _read_value(mm, pos: int, kind: int):
    if kind == _STRING:
        return _read_str(mm, pos)
    fmt = "<" + _FIXED[kind]
    return struct.unpack_from(fmt, mm, pos)[0], pos + struct.calcsize(fmt)


def _read_array(mm, pos: int, sub: int, count: int, keep: int) -> tuple[list, int]:
    if sub == _STRING:
        values = []
        for i in range(count):
            (n,) = struct.unpack_from("<Q", mm, pos)
            if i < keep:
                values.append(bytes(mm[pos + 8 : pos + 8 + n]))
            pos += 8 + n
        return values, pos
    if sub == _ARRAY:
        raise ModelError("nested GGUF arrays are not supported in tokenizer metadata")
    size = struct.calcsize("<" + _FIXED[sub])
    values = list(struct.unpack_from(f"<{keep}{_FIXED[sub]}", mm, pos)) if keep else []
    return values, pos + size * count


def _add_tokenizer(w, tok: dict) -> None:
    from gguf import GGUFValueType

    for name, (kind, value) in tok["scalars"].items():
        if name == "tokenizer.chat_template":
            continue
        w.add_key_value(name, value, GGUFValueType(kind))
    for name, (kind, values) in tok["arrays"].items():
        w.add_key_value(name, values, GGUFValueType.ARRAY, sub_type=GGUFValueType(kind))
    w.add_string("tokenizer.chat_template", GEMMA3_CHAT_TEMPLATE)


# Gemma 3's chat format (the embedded Gemma 3 270M file carries no template): a system message
# is folded into the first user turn; the assistant's role is "model".
GEMMA3_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- set first_user_prefix = messages[0]['content'] + '\\n\\n' -%}"
    "{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}{%- set first_user_prefix = '' -%}{%- set loop_messages = messages -%}{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}"
    "{{ '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first else '') }}"
    "{{ message['content'] | trim }}{{ '<end_of_turn>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\\n' }}{%- endif -%}"
)


# ------------------------------------------------------------------------------ weights


class _Weights:
    """The shared random pieces of the construction: the drafter's embedding E_d and A."""

    def __init__(self, s: Gemma4TinySpec):
        self.rng = np.random.default_rng(s.seed)
        self.e_d = self.normal((s.n_vocab, s.d_embd), 1.0)  # rows: token vectors
        self.a = self.normal((s.d_embd, s.n_embd), 1.0 / np.sqrt(s.d_embd))

    def normal(self, shape: tuple[int, ...], scale: float) -> np.ndarray:
        return (self.rng.standard_normal(shape) * scale).astype(np.float32)

    def linear(self, n_out: int, n_in: int) -> np.ndarray:
        """A weight in GGUF's numpy layout (rows = outputs), variance-preserving."""
        return self.normal((n_out, n_in), 1.0 / np.sqrt(n_in))

    def norm(self, n: int, value: float = 1.0) -> np.ndarray:
        return (value * (1.0 + 0.05 * self.rng.standard_normal(n))).astype(np.float32)


def _rope_freqs(s: Gemma4TinySpec) -> np.ndarray:
    # Proportional RoPE on full layers: the first share of pairs rotates, the rest never does.
    n_rot = int(s.head_dim_full * s.partial_rotary_full / 2)
    return np.array([1.0] * n_rot + [1e30] * (s.head_dim_full // 2 - n_rot), dtype=np.float32)


def _common_keys(w, arch: str, s: Gemma4TinySpec, swa: list[bool], n_head: int) -> None:
    w.add_uint32(f"{arch}.context_length", s.context_length)
    w.add_uint32(f"{arch}.block_count", len(swa))
    w.add_uint32(f"{arch}.attention.head_count", n_head)
    w.add_array(f"{arch}.attention.head_count_kv", [s.n_head_kv_swa if x else s.n_head_kv_full for x in swa])
    w.add_float32(f"{arch}.attention.layer_norm_rms_epsilon", s.rms_eps)
    w.add_uint32(f"{arch}.attention.sliding_window", s.sliding_window)
    w.add_array(f"{arch}.attention.sliding_window_pattern", swa)  # a bool per layer, not a number
    w.add_uint32(f"{arch}.attention.key_length", s.head_dim_full)
    w.add_uint32(f"{arch}.attention.value_length", s.head_dim_full)
    w.add_uint32(f"{arch}.attention.key_length_swa", s.head_dim_swa)
    w.add_uint32(f"{arch}.attention.value_length_swa", s.head_dim_swa)
    w.add_uint32(f"{arch}.attention.shared_kv_layers", 0)
    w.add_uint32(f"{arch}.rope.dimension_count", s.head_dim_full)
    w.add_uint32(f"{arch}.rope.dimension_count_swa", s.head_dim_swa)
    w.add_float32(f"{arch}.rope.freq_base", 1e6)
    w.add_float32(f"{arch}.rope.freq_base_swa", 1e4)


def _open_writer(path: Path, arch: str, name: str, s: Gemma4TinySpec, n_layer: int):
    """(writer, sliding flag per layer): a float32 GGUF of the pair with the keys both files share;
    every layer but the last slides."""
    import gguf

    swa = [i < n_layer - 1 for i in range(n_layer)]
    w = gguf.GGUFWriter(str(path), arch)
    w.add_name(name)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    _common_keys(w, arch, s, swa, s.n_head)
    return w, swa


def _write_target(path: Path, s: Gemma4TinySpec, tok: dict, r: _Weights) -> None:
    arch = "gemma4"
    w, swa = _open_writer(path, arch, "gemma4-tiny (random weights, synthetic)", s, s.n_layer)
    w.add_uint32(f"{arch}.embedding_length", s.n_embd)
    w.add_uint32(f"{arch}.feed_forward_length", s.n_ff)
    w.add_uint32(f"{arch}.embedding_length_per_layer_input", 0)
    w.add_float32(f"{arch}.final_logit_softcapping", s.softcap)
    _add_tokenizer(w, tok)

    w.add_tensor("token_embd.weight", r.normal((s.n_vocab, s.n_embd), 1.0 / np.sqrt(s.n_embd)))
    # Untied head E_d @ A behind an exact-1 output norm: the drafter's own bigram map, re-expressed.
    w.add_tensor("output.weight", (s.head_scale * (r.e_d @ r.a)).astype(np.float32))
    w.add_tensor("output_norm.weight", np.ones(s.n_embd, dtype=np.float32))
    w.add_tensor("rope_freqs.weight", _rope_freqs(s))
    for i, sliding in enumerate(swa):
        hd = s.head_dim_swa if sliding else s.head_dim_full
        kv = s.n_head_kv_swa if sliding else s.n_head_kv_full
        b = f"blk.{i}"
        w.add_tensor(f"{b}.attn_norm.weight", r.norm(s.n_embd))
        w.add_tensor(f"{b}.attn_q.weight", r.linear(s.n_head * hd, s.n_embd))
        w.add_tensor(f"{b}.attn_k.weight", r.linear(kv * hd, s.n_embd))
        if sliding:  # the full layer has no V projection: V = K, as in the real 31B
            w.add_tensor(f"{b}.attn_v.weight", r.linear(kv * hd, s.n_embd))
        w.add_tensor(f"{b}.attn_output.weight", r.linear(s.n_embd, s.n_head * hd))
        w.add_tensor(f"{b}.attn_q_norm.weight", r.norm(hd))
        w.add_tensor(f"{b}.attn_k_norm.weight", r.norm(hd))
        w.add_tensor(f"{b}.post_attention_norm.weight", r.norm(s.n_embd, s.target_branch_norm))
        w.add_tensor(f"{b}.layer_output_scale.weight", np.ones(1, dtype=np.float32))
        _ffn(w, b, r, s.n_embd, s.n_ff, s.target_branch_norm)
    _finish(w)


def _write_drafter(path: Path, s: Gemma4TinySpec, tok: dict, r: _Weights) -> None:
    arch = "gemma4-assistant"
    w, swa = _open_writer(path, arch, "gemma4-tiny-assistant (random weights, synthetic)", s, s.d_layer)
    w.add_uint32(f"{arch}.embedding_length", s.d_embd)
    w.add_uint32(f"{arch}.embedding_length_out", s.n_embd)  # the target's hidden size
    w.add_uint32(f"{arch}.feed_forward_length", s.d_ff)
    w.add_uint32(f"{arch}.nextn_predict_layers", s.d_layer)
    w.add_uint32(f"{arch}.embedding_length_per_layer_input", 0)
    _add_tokenizer(w, tok)

    w.add_tensor("token_embd.weight", r.e_d)  # only its output head: inputs are the target's
    w.add_tensor("output_norm.weight", np.ones(s.d_embd, dtype=np.float32))
    # [target token embedding ; target hidden state] -> drafter: [A, 0] keeps the token's share.
    pre = np.zeros((s.d_embd, 2 * s.n_embd), dtype=np.float32)
    pre[:, : s.n_embd] = r.a
    w.add_tensor("nextn.pre_projection.weight", pre)
    w.add_tensor("nextn.post_projection.weight", r.linear(s.n_embd, s.d_embd))
    w.add_tensor("rope_freqs.weight", _rope_freqs(s))
    for i, sliding in enumerate(swa):
        hd = s.head_dim_swa if sliding else s.head_dim_full
        b = f"blk.{i}"
        w.add_tensor(f"{b}.attn_norm.weight", r.norm(s.d_embd))
        w.add_tensor(f"{b}.attn_q.weight", r.linear(s.n_head * hd, s.d_embd))
        w.add_tensor(f"{b}.attn_output.weight", r.linear(s.d_embd, s.n_head * hd))
        w.add_tensor(f"{b}.attn_q_norm.weight", r.norm(hd))
        w.add_tensor(f"{b}.post_attention_norm.weight", r.norm(s.d_embd, s.drafter_branch_norm))
        w.add_tensor(f"{b}.layer_output_scale.weight", np.ones(1, dtype=np.float32))
        _ffn(w, b, r, s.d_embd, s.d_ff, s.drafter_branch_norm)
    _finish(w)


def _ffn(w, b: str, r: _Weights, n_embd: int, n_ff: int, post_norm: float) -> None:
    w.add_tensor(f"{b}.ffn_norm.weight", r.norm(n_embd))
    w.add_tensor(f"{b}.ffn_gate.weight", r.linear(n_ff, n_embd))
    w.add_tensor(f"{b}.ffn_up.weight", r.linear(n_ff, n_embd))
    w.add_tensor(f"{b}.ffn_down.weight", r.linear(n_embd, n_ff))
    w.add_tensor(f"{b}.post_ffw_norm.weight", r.norm(n_embd, post_norm))


def _finish(w) -> None:
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def _write_atomic(target: Path, write) -> None:
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
