"""Drafters for speculative decoding in process: what proposes tokens for the target to verify.

`PromptLookupDrafter` (n-grams of the prompt, no second model), `ModelDrafter` (a small model of
the same vocabulary), and the checks shared with llama-server on which model may draft (an MTP
assistant only drafts; `mtp.MtpDrafter` is the one that shares the target's context).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from evalkit.errors import ConfigError

if TYPE_CHECKING:
    from evalkit.backends.llama_cpp.backend import LlamaCppBackend


class Drafter:
    """Proposes tokens for speculative decoding."""

    load_log: str = ""  # llama.cpp's log while the draft model loaded (its buffer sizes)

    def draft(self, history: np.ndarray) -> list[int]:
        raise NotImplementedError

    def reset(self) -> None:
        """A new sample starts (the target's KV cache was just cleared)."""

    def observe(self, row: int) -> None:
        """The target just decoded; `row` of that batch produced the newest token (MTP uses it)."""

    def close(self) -> None:
        pass


class PromptLookupDrafter(Drafter):
    """llama-cpp-python's n-gram prompt lookup (no second model)."""

    def __init__(self, num_pred_tokens: int, max_ngram_size: int = 2):
        from llama_cpp.llama_speculative import LlamaPromptLookupDecoding

        self.impl = LlamaPromptLookupDecoding(
            max_ngram_size=max_ngram_size, num_pred_tokens=num_pred_tokens
        )

    def draft(self, history: np.ndarray) -> list[int]:
        return [int(t) for t in self.impl(history)]


class ModelDrafter(Drafter):
    """A small draft model of the same vocabulary proposes `num_pred_tokens` greedy tokens.

    It keeps its own KV cache and only decodes what is new since its last call.
    """

    def __init__(self, backend: LlamaCppBackend, num_pred_tokens: int):
        self.b = backend
        self.k = num_pred_tokens
        self.cached: list[int] = []
        self.load_log = backend.load_log

    def draft(self, history: np.ndarray) -> list[int]:
        b = self.b
        hist = history.tolist()
        if len(hist) + self.k >= b.n_ctx:
            return []
        common = 0
        for a, c in zip(self.cached, hist):
            if a != c:
                break
            common += 1
        common = min(common, len(hist) - 1)  # always decode at least one token for fresh logits
        b.llama._ctx.kv_cache_seq_rm(-1, common, -1)
        b.decode(hist[common:], common, logits="last")
        self.cached = list(hist)
        out: list[int] = []
        n_past = len(hist)
        for _ in range(self.k):
            tok = int(np.argmax(b.logits(1)[0]))
            if b.is_eog(tok):
                break
            out.append(tok)
            b.decode([tok], n_past, logits="last")
            n_past += 1
            self.cached.append(tok)
        return out

    def close(self) -> None:
        self.b.close()


# Architectures that only run inside a target's context (they read its KV cache).
MTP_ONLY_ARCHITECTURES = ("gemma4-assistant",)


def refuse_mtp_only(name: str, architecture: str | None, role: str) -> None:
    """An MTP assistant cannot run alone: llama.cpp would fail with a log line that says little."""
    if architecture in MTP_ONLY_ARCHITECTURES:
        raise ConfigError(
            f"{name} is an MTP drafter ({architecture}) and cannot be used as the {role}; "
            f"use it as backend.draft_model with backend.speculative=mtp"
        )


def mtp_drafter_name(cfg) -> str:
    """backend.draft_model, else the model config's own `mtp_drafter`, else a one-line error."""
    name = cfg.backend.draft_model or cfg.model.mtp_drafter
    if not name:
        raise ConfigError(
            f"speculative=mtp needs an MTP drafter: model {cfg.model.name} names none "
            "(model.mtp_drafter); pass backend.draft_model=<model config name>"
        )
    return name
