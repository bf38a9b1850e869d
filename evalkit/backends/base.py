"""The whole contract a task may use from a backend.

Every backend generates text (`TextGeneration`). Some also give token-level access to a loaded
model (`TokenAccess`: tokenize, decode at positions, logits rows, KV cache, sampler) or can save
and restore a sequence's state (`StateAccess`), report the memory llama.cpp allocated
(`MemoryFacts`) or name the OpenAI-compatible server they talk to (`OpenAIEndpoint`). A backend class says which in its `capabilities`;
a task kind says which it needs, and the preflight refuses a mismatch before anything loads.
A new backend is one module with a class satisfying `TextGeneration` plus one line in
`evalkit.backends.REGISTRY`.
"""

from __future__ import annotations

from enum import Enum
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, Field

from evalkit.config import SamplingConfig
from evalkit.records import BackendInfo, FinishReason  # records own the stored types; re-exported here


class SampleFailed(Exception):
    """One request failed for good (after the backend's retries): recorded, and the run goes on."""


class GenerationRequest(BaseModel):
    messages: list[dict[str, str]]  # chat messages; a backend without templates joins them
    sampling: SamplingConfig
    seed: int


class DraftStats(BaseModel):
    """Speculative decoding: how many drafted tokens the target model accepted."""

    drafted_tokens: int = 0
    accepted_tokens: int = 0
    draft_steps: int = 0

    @property
    def acceptance_rate(self) -> float | None:
        return self.accepted_tokens / self.drafted_tokens if self.drafted_tokens else None


class Generation(BaseModel):
    """One completed generation with its timings; seconds and tokens, never guesses."""

    text: str
    finish_reason: FinishReason
    prompt_tokens: int | None  # None: a server that reports no count while streaming
    completion_tokens: int
    cached_prompt_tokens: int = 0  # prompt tokens reused from a cache (not re-evaluated)
    ttft_s: float | None  # request start -> first generated token
    prompt_eval_s: float | None  # prompt processing alone (perf counters or server timings)
    generation_s: float | None  # first token -> last token, wall clock
    total_s: float  # request start -> end, wall clock
    draft: DraftStats | None = None
    server_timings: dict[str, Any] | None = None  # llama-server's `timings`, verbatim
    server_model: str | None = None
    extra: dict[str, Any] = Field(default_factory=dict)


class Capability(str, Enum):
    """What a backend can do beyond describing itself; task kinds name the ones they need."""

    TEXT_GENERATION = "text_generation"  # generate(request): every backend
    TOKEN_ACCESS = "token_access"  # the `TokenAccess` protocol: tokens, decode, logits, KV cache
    STATE = "state"  # the `StateAccess` protocol: save and restore a sequence's KV state
    MODEL_FACTS = "model_facts"  # model_facts(): llama.cpp's own description, size, parameters
    MEMORY_FACTS = "memory_facts"  # the `MemoryFacts` protocol: buffer sizes llama.cpp allocated
    OPENAI_API = "openai_api"  # the `OpenAIEndpoint` protocol: a server lm-eval's own clients can call


@runtime_checkable
class TextGeneration(Protocol):
    """Every backend: generate text for chat messages, describe itself, release what it holds."""

    capabilities: frozenset[Capability]
    concurrency: int  # requests the generation runner may have in flight at once (1: in process)

    def info(self) -> BackendInfo: ...

    def generate(self, request: GenerationRequest) -> Generation: ...

    def cancel(self) -> None:
        """Ctrl-C: make requests in flight stop early (nothing to do where generate runs in this thread)."""
        ...

    def close(self) -> None: ...


Backend = TextGeneration  # the name runners used before capabilities were split out


@runtime_checkable
class TokenAccess(Protocol):
    """A model loaded in this process, at the level of token ids and logits rows.

    decode(tokens, n_past, logits) runs tokens at positions n_past.. ("last", "all" rows of the
    final piece, or "none"); logits(n) is a view of the last decode's n output rows.
    """

    n_ctx: int
    n_batch: int
    n_threads_batch: int  # threads a decode uses: the runners' row maths use as many
    n_vocab: int

    @property
    def add_bos(self) -> bool: ...

    @property
    def bos_token(self) -> int: ...

    @property
    def eos_token(self) -> int: ...

    def tokenize(self, text: str, add_bos: bool = True, special: bool = False) -> list[int]: ...

    def detokenize(self, tokens: list[int]) -> str: ...

    def token_text(self, token: int) -> str: ...

    def is_eog(self, token: int) -> bool: ...

    def prompt_tokens(self, messages: list[dict[str, str]]) -> list[int]: ...

    def chat_template_source(self) -> str | None: ...

    def render_chat(self, messages: list[dict[str, str]], add_generation_prompt: bool = True) -> str | None: ...

    def clear(self) -> None: ...

    def trim(self, n_past: int) -> bool: ...

    def decode(self, tokens: list[int], n_past: int, logits: str = "last", outputs_from: int = 0) -> None: ...

    def synchronize(self) -> None: ...

    def logits(self, n_rows: int) -> Any: ...  # numpy array (n_rows x n_vocab)

    def sampler(self, sampling: SamplingConfig, seed: int) -> Any: ...

    def sample_last(self, sampler: Any) -> int: ...

    def prefix_reuse_is_safe(self) -> bool: ...


@runtime_checkable
class StateAccess(Protocol):
    """Save the KV state of sequence 0 once and restore it many times (speed's depth fill)."""

    def save_state(self) -> Any: ...

    def restore_state(self, state: Any) -> bool: ...


@runtime_checkable
class OpenAIEndpoint(Protocol):
    """An OpenAI-compatible server behind the backend: lm-eval's remote models call it directly."""

    base_url: str  # up to and including /v1
    request_model: str  # the model name requests carry


@runtime_checkable
class MemoryFacts(Protocol):
    """The memory llama.cpp reported allocating while loading (its log, not our estimate)."""

    def memory_facts(self) -> dict[str, int | None]:
        """`MemoryRecord` fields: kv_cache_bytes, compute_buffer_bytes, and a drafter's draft_*."""
        ...


def capabilities_of(backend_or_class: Any) -> frozenset[Capability]:
    return frozenset(getattr(backend_or_class, "capabilities", ()) or ())
