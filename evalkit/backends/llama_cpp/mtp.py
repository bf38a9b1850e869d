"""Multi-token prediction (MTP) drafting in process: a Gemma 4 "assistant" drafter.

The drafter is a separate GGUF (architecture `gemma4-assistant`) whose context is created with
llama.cpp's MTP context type and `ctx_other` = the target's context: it has no K/V projections
and attends over the target's own KV cache, and its input is the target's token embedding
joined with the target's last hidden state (llama.cpp's "nextn" embedding). This follows
llama.cpp's `common/speculative.cpp` (draft-mtp, shared-memory mode) and llama-cpp-python's
`examples/server/server.py` (MTPDraftProvider):

- the target outputs its hidden state for every row of every decode (unmasked nextn
  embeddings); after each decode the row paired with the next token is kept (`observe`);
- a draft step decodes (last token, that hidden state) at the last token's position, takes the
  drafter's greedy token, and feeds (that token, the drafter's own output state) back at the
  same position, `num_pred_tokens` times.

The drafter only proposes: the target verifies every token (evalkit.backends.llama_cpp.backend), so the
output is the target's whatever the drafter says.
"""

from __future__ import annotations

import ctypes

import numpy as np

import llama_cpp
from llama_cpp import llama_cpp_ext

from evalkit.backends.llama_cpp import log as llama_log
from evalkit.backends.llama_cpp.drafters import Drafter
from evalkit.errors import BackendError, ModelError


class MtpDrafter(Drafter):
    """Drafts with an MTP assistant that shares the target's KV cache (Gemma 4)."""

    def __init__(self, target, draft_path: str, name: str, num_pred_tokens: int):
        self.target = target
        self.name = name
        self.k = num_pred_tokens
        self.model = None
        self.ctx = None
        self.batch = None
        mark = llama_log.mark()
        mparams = llama_cpp.llama_model_default_params()
        mparams.n_gpu_layers = target.n_gpu_layers
        mparams.use_mmap = target.cfg.use_mmap
        self.model = llama_cpp.llama_model_load_from_file(draft_path.encode(), mparams)
        if not self.model:
            why = llama_log.last_error(mark) or "load failed"
            raise ModelError(f"llama.cpp could not load MTP drafter {name}: {why}")
        try:
            self._check_fits()
            self._open_context(mark)
        except BaseException:
            self.close()
            raise
        self.load_log = llama_log.since(mark)
        self.n_embd = int(llama_cpp.llama_model_n_embd_out(self.model))
        self.batch = llama_cpp.llama_batch_init(1, self.n_embd, 1)
        self._tokens = (llama_cpp.llama_token * 1)()
        self.batch.token = self._tokens  # an MTP row carries a token and an embedding
        self._embd = np.ctypeslib.as_array(self.batch.embd, shape=(self.n_embd,))
        self.pending_h = np.zeros(self.n_embd, dtype=np.float32)
        # The target now outputs its hidden state for every token of every decode.
        llama_cpp_ext.llama_set_embeddings_nextn(target.llama.ctx, True, False)
        llama_cpp_ext.llama_set_embeddings_nextn(self.ctx, True, True)

    def _check_fits(self) -> None:
        """A one-line error before generation for a drafter that cannot serve this target."""
        tgt = self.target.llama._model.model
        n_nextn = int(llama_cpp.llama_model_n_layer_nextn(self.model))
        if n_nextn <= 0:
            raise BackendError(
                f"draft model {self.name} is not an MTP drafter (it has no nextn layers); "
                "speculative=mtp needs an MTP assistant such as gemma4_tiny_assistant"
            )
        n_out = int(llama_cpp.llama_model_n_embd_out(self.model))
        n_tgt = int(llama_cpp.llama_model_n_embd(tgt))
        if n_out != n_tgt:
            raise BackendError(
                f"MTP drafter {self.name} was built for a target with n_embd {n_out}, "
                f"but this model's n_embd is {n_tgt}"
            )
        v_d = int(llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(self.model)))
        if v_d != self.target.n_vocab:
            raise BackendError(
                f"MTP drafter {self.name} has a {v_d}-token vocabulary, the target "
                f"{self.target.n_vocab}; speculative decoding needs the same tokenizer"
            )

    def _open_context(self, mark: int) -> None:
        t = self.target
        p = llama_cpp.llama_context_default_params()
        p.n_ctx = t.n_ctx
        p.n_batch = p.n_ubatch = 1  # one (token, hidden state) row per draft step
        p.n_seq_max = 1
        p.n_outputs_max = 1
        p.n_threads = t.n_threads
        p.n_threads_batch = t.n_threads_batch
        p.flash_attn_type = t.llama.context_params.flash_attn_type
        p.type_k = t.llama.context_params.type_k
        p.type_v = t.llama.context_params.type_v
        p.swa_full = t.swa_full
        p.no_perf = True
        p.ctx_type = llama_cpp.LLAMA_CONTEXT_TYPE_MTP
        p.ctx_other = t.llama.ctx
        self.ctx = llama_cpp.llama_init_from_model(self.model, p)
        if not self.ctx:
            why = llama_log.last_error(mark) or "context creation failed"
            raise ModelError(f"llama.cpp could not create the MTP context for {self.name}: {why}")
        if llama_cpp_ext.llama_get_ctx_other(self.ctx) != t.llama.ctx:
            raise BackendError(
                f"MTP drafter {self.name} does not share the target's KV cache; evalkit "
                "drives only shared-cache (Gemma 4 assistant) drafters"
            )

    # ------------------------------------------------------------------ the Drafter protocol

    def reset(self) -> None:
        # Nothing of the drafter's own to clear: its KV cache mirrors the target's cells and
        # layers (llama-kv-cache.cpp: `v_cells_impl(other ? other->v_cells_impl : ...)`, and
        # seq_rm/clear return early `if (other)`), so clearing the target's clears both.
        self.pending_h[:] = 0.0

    def observe(self, row: int) -> None:
        """Keep the target's hidden state at batch row `row` of its last decode."""
        ptr = llama_cpp_ext.llama_get_embeddings_nextn_ith(self.target.llama.ctx, row)
        if not ptr:
            raise BackendError(f"the target produced no hidden state for MTP (row {row})")
        self.pending_h[:] = np.ctypeslib.as_array(ptr, shape=(self.n_embd,))

    def draft(self, history: np.ndarray) -> list[int]:
        token, pos = int(history[-1]), len(history) - 1
        embd: np.ndarray = self.pending_h
        out: list[int] = []
        n_vocab = self.target.n_vocab
        for _ in range(self.k):
            self._tokens[0] = token
            self._embd[:] = embd
            b = self.batch
            b.n_tokens = 1
            b.pos[0] = pos  # every draft step sits at the last token's position (shared KV)
            b.n_seq_id[0] = 1
            b.seq_id[0][0] = 0
            b.logits[0] = 1
            rc = llama_cpp.llama_decode(self.ctx, b)
            if rc != 0:
                raise BackendError(f"MTP drafter {self.name}: llama_decode returned {rc}")
            logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(self.ctx, 0), shape=(n_vocab,))
            token = int(np.argmax(logits))
            if self.target.is_eog(token):
                break
            out.append(token)
            h = llama_cpp_ext.llama_get_embeddings_nextn_ith(self.ctx, 0)
            if not h:
                break
            embd = np.ctypeslib.as_array(h, shape=(self.n_embd,))
        return out

    def close(self) -> None:
        if self.batch is not None:
            self.batch.token = ctypes.POINTER(llama_cpp.llama_token)()  # ours, not llama.cpp's
            llama_cpp.llama_batch_free(self.batch)
            self.batch = None
        if self.ctx:
            try:
                llama_cpp_ext.llama_set_embeddings_nextn(self.target.llama.ctx, False, False)
            except Exception:
                pass
            llama_cpp.llama_free(self.ctx)
            self.ctx = None
        if self.model:
            llama_cpp.llama_model_free(self.model)
            self.model = None
