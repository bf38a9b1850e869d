"""A tiny in-memory backend for testing runners in milliseconds (never a stand-in for llama.cpp).

Tokens are bytes (id = byte + 1, BOS = 0, 257 ids); every logits row is zero, i.e. the uniform
distribution, so a perplexity run must give exactly n_vocab. `generate` answers with the first
words of the last message, deterministically. Tests install it under an existing backend type
with `install(monkeypatch, capabilities=...)`: evalkit finds it through its registry like any
other backend, so `run.execute` and the preflight see only its declared capabilities.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np

from evalkit.backends import OpenedBackend
from evalkit.backends.base import BackendInfo, Capability, Generation, GenerationRequest
from evalkit.records import ModelRecord

N_VOCAB = 257


class FakeBackend:
    type = "fake"
    capabilities = frozenset({Capability.TEXT_GENERATION, Capability.TOKEN_ACCESS})
    concurrency = 1
    n_threads_batch = 1

    def __init__(self, n_ctx: int = 512, n_batch: int | None = None):
        self.n_ctx = n_ctx
        self.n_batch = n_batch or n_ctx
        self.n_vocab = N_VOCAB
        self.kv: list[int] = []  # tokens held at positions 0..len-1
        self.n_out = 0
        self.calls: list[str] = []
        self.closed = False

    # ---------------------------------------------------------------- TextGeneration

    def info(self) -> BackendInfo:
        return BackendInfo(type=self.type, device="memory", settings={"n_ctx": self.n_ctx},
                           output_settings={"n_ctx": self.n_ctx}, chat_template="none")

    def generate(self, request: GenerationRequest) -> Generation:
        t0 = time.perf_counter()
        self.calls.append("generate")
        words = request.messages[-1]["content"].split()
        n = request.sampling.max_tokens or 8
        text = " ".join(words[:n])
        prompt = sum(len(m["content"].encode()) for m in request.messages)
        return Generation(text=text, finish_reason="stop", prompt_tokens=prompt, completion_tokens=len(words[:n]),
                          ttft_s=0.0, prompt_eval_s=0.0, generation_s=0.0, total_s=time.perf_counter() - t0)

    def cancel(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    # ---------------------------------------------------------------- TokenAccess

    add_bos = True
    bos_token = 0
    eos_token = 0

    def tokenize(self, text: str, add_bos: bool = True, special: bool = False) -> list[int]:
        return ([0] if add_bos else []) + [b + 1 for b in text.encode("utf-8")]

    def detokenize(self, tokens: list[int]) -> str:
        return bytes(t - 1 for t in tokens if t > 0).decode("utf-8", errors="replace")

    def token_text(self, token: int) -> str:
        return self.detokenize([token])

    def is_eog(self, token: int) -> bool:
        return token == 0

    def prompt_tokens(self, messages: list[dict[str, str]]) -> list[int]:
        return self.tokenize("\n\n".join(m["content"] for m in messages))

    def chat_template_source(self) -> str | None:
        return None

    def render_chat(self, messages, add_generation_prompt: bool = True) -> str | None:
        return None

    def clear(self) -> None:
        self.kv = []

    def trim(self, n_past: int) -> bool:
        del self.kv[n_past:]
        return True

    def decode(self, tokens: list[int], n_past: int, logits: str = "last", outputs_from: int = 0) -> None:
        assert n_past == len(self.kv), (n_past, len(self.kv))  # positions follow the cache
        assert n_past + len(tokens) <= self.n_ctx
        self.kv += list(tokens)
        last = len(tokens) - (len(tokens) - 1) % self.n_batch - 1  # start of the final piece
        self.n_out = {"last": 1, "none": 0}.get(logits, len(tokens) - max(last, outputs_from))

    def synchronize(self) -> None:
        pass

    def logits(self, n_rows: int) -> np.ndarray:
        assert n_rows <= self.n_out
        return np.zeros((n_rows, self.n_vocab), dtype=np.float32)

    def sampler(self, sampling, seed: int) -> Any:
        return np.random.default_rng(seed)

    def sample_last(self, sampler) -> int:
        return int(sampler.integers(1, self.n_vocab))

    def prefix_reuse_is_safe(self) -> bool:
        return True


def open_backend(cfg, **overrides) -> OpenedBackend:
    backend = BACKEND(**{k: v for k, v in overrides.items() if k in ("n_ctx", "n_batch")})
    OPENED.append(backend)
    model = ModelRecord(name=cfg.model.name, variant="fake", sha256=None, n_vocab=N_VOCAB)
    return OpenedBackend(backend=backend, model=model)


BACKEND: type = FakeBackend
OPENED: list[FakeBackend] = []


def install(monkeypatch, backend_type: str = "llama_cpp", capabilities: frozenset | None = None) -> list[FakeBackend]:
    """Serve `backend_type` with the fake (optionally declaring other capabilities); the backends
    opened during the test are returned in a list as they open."""
    from evalkit import backends

    cls = FakeBackend if capabilities is None else type("LimitedFake", (FakeBackend,), {"capabilities": capabilities})
    module = sys.modules[__name__]
    monkeypatch.setattr(module, "BACKEND", cls)
    monkeypatch.setattr(module, "OPENED", [])
    monkeypatch.setitem(backends.REGISTRY, backend_type, __name__)
    return module.OPENED
