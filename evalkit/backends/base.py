"""The whole contract a task may use from a backend: generate, tokenize, describe itself.

Runners see only these types. A new backend is one module with a class satisfying `Backend`
plus one line in `evalkit.backends.REGISTRY`.
"""

from __future__ import annotations

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


@runtime_checkable
class Backend(Protocol):
    def info(self) -> BackendInfo: ...

    def generate(self, request: GenerationRequest) -> Generation: ...

    def close(self) -> None: ...
