"""In-process llama-cpp-python: the model is loaded once per run and reused for every sample.

Generation runs its own decode/sample loop on llama-cpp-python's context, batch and sampler
instead of `Llama.generate`, for three reasons: every timestamp is taken exactly where the work
happens; speculative decoding can count drafted and accepted tokens; and no n_ctx x n_vocab
float32 score matrix is ever filled (`Llama.generate` copies every verified row into one).
"""

from __future__ import annotations

import ctypes
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from evalkit.backends.llama_cpp import log as llama_log
from evalkit.backends.llama_cpp.drafters import (
    Drafter,
    ModelDrafter,
    PromptLookupDrafter,
    mtp_drafter_name,
    refuse_mtp_only,
)
from evalkit.backends.base import BackendInfo, Capability, DraftStats, Generation, GenerationRequest
from evalkit.config import LlamaCppBackendConfig, SamplingConfig
from evalkit.errors import BackendError, ModelError
from evalkit.hardware import cpu_name, physical_cores
from evalkit.llama_build import llama_cpp_build_options, llama_cpp_flavour

import llama_cpp  # noqa: E402  (imported after llama_log, which routes its log)
from llama_cpp import llama_chat_format

GGML_TYPES = {
    "f32": 0,
    "f16": 1,
    "q4_0": 2,
    "q4_1": 3,
    "q5_0": 6,
    "q5_1": 7,
    "q8_0": 8,
    "iq4_nl": 20,
    "bf16": 30,
}
_MIB = 1024 * 1024


@dataclass
class LoadFacts:
    """What llama.cpp reported while loading: its own numbers, not our estimates."""

    kv_cache_bytes: int | None
    compute_buffer_bytes: int | None
    model_buffer_bytes: int | None

    def memory_fields(self) -> dict[str, int | None]:
        """The `MemoryRecord` fields these facts fill for the model that was loaded."""
        return {"kv_cache_bytes": self.kv_cache_bytes, "compute_buffer_bytes": self.compute_buffer_bytes}


@dataclass
class Trace:
    """One generation as llama.cpp saw it: ("decode", tokens, n_past, logits, outputs_from),
    ("rollback", n_past) and ("sample", row, token) events, in order."""

    prompt: list[int]
    events: list[tuple]
    text: str

    def samples(self) -> list[tuple[int, int]]:
        """(event index, token) of every sampled token (the last may be end-of-generation)."""
        return [(i, ev[2]) for i, ev in enumerate(self.events) if ev[0] == "sample"]


class LlamaCppBackend:
    """TextGeneration, TokenAccess, StateAccess and MemoryFacts on one llama-cpp-python `Llama`."""

    type = "llama_cpp"
    capabilities = frozenset(Capability)
    concurrency = 1  # one model, one sequence: samples run one after another

    def __init__(
        self,
        cfg: LlamaCppBackendConfig,
        model_path: str,
        *,
        drafter: "Drafter | None" = None,
        n_ctx: int | None = None,
        n_batch: int | None = None,
    ):
        self.cfg = cfg
        self.model_path = model_path
        self.gpu_build = bool(llama_cpp.llama_supports_gpu_offload())
        self.n_gpu_layers = (
            cfg.n_gpu_layers if cfg.n_gpu_layers is not None else (-1 if self.gpu_build else 0)
        )
        self.n_threads = cfg.n_threads or physical_cores()
        self.n_threads_batch = cfg.n_threads_batch or self.n_threads
        n_batch = n_batch or cfg.n_batch
        self.swa_full = cfg.swa_full if cfg.swa_full is not None else cfg.speculative != "none"
        mark = llama_log.mark()
        try:
            self.llama = llama_cpp.Llama(
                model_path,
                n_gpu_layers=self.n_gpu_layers,
                n_ctx=n_ctx or cfg.n_ctx,
                n_batch=n_batch,
                n_ubatch=min(cfg.n_ubatch, n_batch),
                n_threads=self.n_threads,
                n_threads_batch=self.n_threads_batch,
                flash_attn=cfg.flash_attn,
                type_k=GGML_TYPES[cfg.type_k],
                type_v=GGML_TYPES[cfg.type_v],
                seed=cfg.seed,
                use_mmap=cfg.use_mmap,
                swa_full=self.swa_full,
                verbose=False,
            )
        except (ValueError, RuntimeError) as exc:
            why = llama_log.last_error(mark) or str(exc)
            raise ModelError(f"llama.cpp could not load {model_path}: {why}") from None
        self.load_log = llama_log.since(mark)
        self.load_facts = parse_load_log(self.load_log)
        self.n_ctx = self.llama.n_ctx()
        self.n_batch = self.llama.n_batch
        self.n_vocab = self.llama.n_vocab()
        self.vocab = self.llama._model.vocab
        self.drafter = drafter
        self.draft_name: str | None = None  # the draft model's config name (draft, mtp)
        self.draft_path: str | None = None
        self._formatter = self._chat_formatter() if cfg.chat_template else None
        # When a list: every decode, cache rollback and sample of generate_tokens is appended
        # to it (see `traced` and `replay_logits`: the losslessness diagnostic).
        self._trace: list[tuple] | None = None

    # ---------------------------------------------------------------- description

    def info(self) -> BackendInfo:
        cfg = self.cfg
        return BackendInfo(
            type=self.type,
            build=f"llama-cpp-python {llama_cpp.__version__}",
            device=self.device_name(),
            gpu_offload=self.gpu_build and self.n_gpu_layers != 0,
            flavour=llama_cpp_flavour(),
            settings={
                "n_ctx": self.n_ctx,
                "n_batch": self.n_batch,
                "n_ubatch": self.llama.context_params.n_ubatch,
                "n_threads": self.n_threads,
                "n_threads_batch": self.n_threads_batch,
                "n_gpu_layers": self.n_gpu_layers,
                "flash_attn": cfg.flash_attn,
                "type_k": cfg.type_k,
                "type_v": cfg.type_v,
                "use_mmap": cfg.use_mmap,
                "swa_full": self.swa_full,
                "speculative": cfg.speculative,
                "num_pred_tokens": cfg.num_pred_tokens if cfg.speculative != "none" else None,
                "draft_model": self.draft_name if cfg.speculative in ("draft", "mtp") else None,
            },
            output_settings={
                "type_k": cfg.type_k,
                "type_v": cfg.type_v,
                "flash_attn": cfg.flash_attn,
                "chat_template": self._formatter is not None,
                "n_ctx": self.n_ctx,
            },
            chat_template="gguf" if self._formatter is not None else "none",
            extra={
                "system_info": llama_cpp.llama_print_system_info().decode(errors="replace").strip(),
                "gpu_build": self.gpu_build,
                "build_options": llama_cpp_build_options(),
            },
        )

    def memory_facts(self) -> dict[str, int | None]:
        return {**self.load_facts.memory_fields(), **self.draft_memory()}

    def draft_memory(self) -> dict[str, int | None]:
        """What the draft model adds to memory: its file, and llama.cpp's own buffer sizes."""
        if self.drafter is None or self.draft_path is None:
            return {}
        log = self.drafter.load_log
        facts = parse_load_log(log)
        # An MTP drafter's cache lines describe the target's layers it reads ("sharing with
        # layer N"): it allocates no KV cache of its own.
        shared = "sharing with layer" in log
        return {
            "draft_file_size_bytes": Path(self.draft_path).stat().st_size,
            "draft_model_buffer_bytes": facts.model_buffer_bytes,
            "draft_kv_cache_bytes": 0 if shared else facts.kv_cache_bytes,
            "draft_compute_buffer_bytes": facts.compute_buffer_bytes,
        }

    def device_name(self) -> str:
        if self.gpu_build and self.n_gpu_layers != 0:
            from evalkit.hardware import gpu_names

            names = gpu_names()
            return names[0] if names else "GPU"
        return cpu_name()

    # ---------------------------------------------------------------- tokens

    def tokenize(self, text: str, add_bos: bool = True, special: bool = False) -> list[int]:
        return self.llama.tokenize(text.encode("utf-8"), add_bos=add_bos, special=special)

    def detokenize(self, tokens: list[int]) -> str:
        return self.llama.detokenize(tokens).decode("utf-8", errors="replace")

    @property
    def add_bos(self) -> bool:
        return bool(llama_cpp.llama_vocab_get_add_bos(self.vocab))

    @property
    def bos_token(self) -> int:
        return int(self.llama.token_bos())

    def prompt_tokens(self, messages: list[dict[str, str]]) -> list[int]:
        """The model's own chat template when it has one (and it is on), else the plain text."""
        if self._formatter is not None:
            rendered = self._formatter(messages=messages)
            # llama-cpp-python's convention: a Jinja template brings its own BOS.
            return self.tokenize(rendered.prompt, add_bos=not rendered.added_special, special=True)
        text = "\n\n".join(m["content"] for m in messages)
        return self.tokenize(text, add_bos=True, special=False)

    @property
    def eos_token(self) -> int:
        return int(self.llama.token_eos())

    def chat_template_source(self) -> str | None:
        """The GGUF's Jinja chat template (even when backend.chat_template is off), or None."""
        f = self._formatter or self._chat_formatter()
        return f.template if f is not None else None

    def render_chat(self, messages: list[dict[str, str]], add_generation_prompt: bool = True) -> str | None:
        """The GGUF's chat template rendered as text (HF's apply_chat_template); None: it has none."""
        f = self._formatter or self._chat_formatter()
        if f is None:
            return None
        return f._environment.render(
            messages=messages,
            eos_token=f.eos_token,
            bos_token=f.bos_token,
            add_generation_prompt=add_generation_prompt,
            raise_exception=_raise_template_error,
            strftime_now=f.strftime_now,
        )

    def _chat_formatter(self):
        template = self.llama.metadata.get("tokenizer.chat_template")
        if not template:
            return None
        llm = self.llama
        eos = llm._model.token_get_text(llm.token_eos()) if llm.token_eos() != -1 else ""
        bos = llm._model.token_get_text(llm.token_bos()) if llm.token_bos() != -1 else ""
        return llama_chat_format.Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos)

    # ---------------------------------------------------------------- low-level decode

    def clear(self) -> None:
        """Forget every cached token: the next decode starts from an empty KV cache."""
        mem = llama_cpp.llama_get_memory(self.llama.ctx)
        llama_cpp.llama_memory_clear(mem, True)
        self.llama.n_tokens = 0

    def decode(
        self, tokens: list[int], n_past: int, logits: str = "last", outputs_from: int = 0
    ) -> None:
        """Decode `tokens` at positions n_past.. in n_batch pieces.

        logits: "last" (only the final token), "all" (every token of the final piece; callers keep
        len(tokens) <= n_batch), or "none". With "all", `outputs_from` skips the rows of tokens
        before that index (perplexity scores only a chunk's second half: no logits for the first).
        """
        llm = self.llama
        if self._trace is not None:
            self._trace.append(("decode", list(tokens), n_past, logits, outputs_from))
        for start in range(0, len(tokens), self.n_batch):
            piece = tokens[start : start + self.n_batch]
            last_piece = start + self.n_batch >= len(tokens)
            all_rows = logits == "all" and last_piece
            llm._batch.set_batch(batch=piece, n_past=n_past + start, logits_all=all_rows)
            if logits == "none" or not last_piece:
                llm._batch.batch.logits[len(piece) - 1] = False
            elif all_rows and outputs_from > start:
                for i in range(min(outputs_from - start, len(piece) - 1)):
                    llm._batch.batch.logits[i] = False
            llm._ctx.decode(llm._batch)

    def trim(self, n_past: int) -> bool:
        """Drop cached tokens from position n_past on; False: this cache cannot (then clear)."""
        return bool(self.llama._ctx.kv_cache_seq_rm(-1, n_past, -1))

    def prefix_reuse_is_safe(self) -> bool:
        """Sliding-window and recurrent caches drop what a prefix reuse would need."""
        model = self.llama.model
        if llama_cpp.llama_model_n_swa(model) > 0:
            return False
        return not (llama_cpp.llama_model_is_recurrent(model) or llama_cpp.llama_model_is_hybrid(model))

    def sampler(self, s: SamplingConfig, seed: int):
        """llama.cpp's sampler chain for these settings, seeded as generation runs seed it."""
        self.llama.set_seed(seed)
        return self.llama._init_sampler(
            top_k=s.top_k, top_p=s.top_p, min_p=s.min_p, temp=s.temperature, repeat_penalty=s.repeat_penalty
        )

    def sample_last(self, sampler) -> int:
        """Sample from the last decode's last logits row."""
        return int(sampler.sample(self.llama._ctx, -1))

    def save_state(self) -> ctypes.Array:
        """Sequence 0's KV state, as bytes llama.cpp can restore."""
        ctx = self.llama.ctx
        size = llama_cpp.llama_state_seq_get_size(ctx, 0)
        buf = (ctypes.c_uint8 * size)()
        llama_cpp.llama_state_seq_get_data(ctx, buf, size, 0)
        return buf

    def restore_state(self, state: ctypes.Array) -> bool:
        """Put a saved state back into sequence 0; False: llama.cpp refused it."""
        return llama_cpp.llama_state_seq_set_data(self.llama.ctx, state, len(state), 0) != 0

    def model_facts(self) -> dict[str, Any]:
        """llama.cpp's own description of the loaded model (llama-bench's model_type/size/params)."""
        model = self.llama.model
        desc = ctypes.create_string_buffer(256)
        llama_cpp.llama_model_desc(model, desc, len(desc))
        return {
            "model_desc": desc.value.decode(errors="replace"),
            "model_size_bytes": int(llama_cpp.llama_model_size(model)),
            "model_n_params": int(llama_cpp.llama_model_n_params(model)),
        }

    def ggml_build(self) -> str:
        from evalkit.backends.llama_cpp.ggml import ggml_build

        return ggml_build()

    def ggml_backends(self) -> str | None:
        from evalkit.backends.llama_cpp.ggml import ggml_backends

        return ggml_backends()

    def rollback(self, n_past: int) -> None:
        """Drop every cached token at position n_past and later (rejected drafts)."""
        if self._trace is not None:
            self._trace.append(("rollback", n_past))
        self.llama._ctx.kv_cache_seq_rm(-1, n_past, -1)

    def sample(self, sampler, row: int) -> int:
        token = sampler.sample(self.llama._ctx, row)
        if self._trace is not None:
            self._trace.append(("sample", row, int(token)))
        return token

    def traced(self, messages: list[dict[str, str]], s: SamplingConfig, seed: int) -> "Trace":
        """Generate as `generate` does, recording every decode, rollback and sampled token."""
        prompt = self.prompt_tokens(messages)
        self._trace = []
        try:
            gen = self.generate_tokens(prompt, s, seed)
        finally:
            events, self._trace = self._trace, None
        return Trace(prompt=prompt, events=events, text=gen.text)

    def replay_logits(self, events: list[tuple], row: int) -> np.ndarray:
        """Re-run a trace's decodes and rollbacks from an empty cache; the logits row `row` of
        the last decode (a copy). The same batches with the same outputs: the same numerics."""
        self.clear()
        for ev in events:
            if ev[0] == "decode":
                self.decode(ev[1], ev[2], logits=ev[3], outputs_from=ev[4])
            elif ev[0] == "rollback":
                self.llama._ctx.kv_cache_seq_rm(-1, ev[1], -1)
        self.synchronize()
        ptr = llama_cpp.llama_get_logits_ith(self.llama.ctx, row)
        return np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).copy()

    def rows_batch_vs_single(
        self, prompt: list[int], generated: list[int], chunk: int, top: int = 64
    ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """The same tokens decoded two ways, no speculation involved: after the prompt, the
        generated tokens in batches of `chunk` rows, and one at a time. Per position predicted
        from a generated token: (the batch row's `top` token ids, their logits in the batch row,
        their logits in the single-token row). The spread is this build's batch numerics."""
        self.clear()
        self.decode(prompt, 0, logits="last")
        batch: list[tuple[np.ndarray, np.ndarray]] = []
        n = len(prompt)
        for start in range(0, len(generated), chunk):
            piece = generated[start : start + chunk]
            self.decode(piece, n + start, logits="all")
            rows = self.logits(len(piece))
            for r in rows:
                ids = np.argpartition(-r, top)[:top]
                batch.append((ids, r[ids].copy()))
        self.clear()
        self.decode(prompt, 0, logits="last")
        out = []
        for j, tok in enumerate(generated):
            self.decode([tok], n + j, logits="last")
            row = self.logits(1)[0]
            ids, vals = batch[j]
            out.append((ids, vals, row[ids].copy()))
        return out

    def token_text(self, token: int) -> str:
        return self.llama.detokenize([token]).decode("utf-8", errors="replace")

    def synchronize(self) -> None:
        llama_cpp.llama_synchronize(self.llama.ctx)

    def logits(self, n_rows: int) -> np.ndarray:
        """A view of the logits of the last decode's `n_rows` output rows (n_rows x n_vocab)."""
        ptr = llama_cpp.llama_get_logits(self.llama.ctx)
        return np.ctypeslib.as_array(ptr, shape=(n_rows, self.n_vocab))

    def is_eog(self, token: int) -> bool:
        return bool(llama_cpp.llama_vocab_is_eog(self.vocab, token))

    # ---------------------------------------------------------------- generation

    def generate(self, request: GenerationRequest) -> Generation:
        t0 = time.perf_counter()
        prompt = self.prompt_tokens(request.messages)
        return self.generate_tokens(prompt, request.sampling, request.seed, t0=t0)

    def generate_tokens(
        self, prompt: list[int], s: SamplingConfig, seed: int, *, t0: float | None = None
    ) -> Generation:
        """Generate from already-built prompt tokens (lm-eval hands over finished prompt text)."""
        t0 = time.perf_counter() if t0 is None else t0
        if len(prompt) >= self.n_ctx:
            raise BackendError(
                f"prompt has {len(prompt)} tokens but backend.n_ctx is {self.n_ctx}; raise n_ctx"
            )
        self.llama.set_seed(seed)
        sampler = self.llama._init_sampler(
            top_k=s.top_k,
            top_p=s.top_p,
            min_p=s.min_p,
            temp=s.temperature,
            repeat_penalty=s.repeat_penalty,
        )
        limit = self.n_ctx - len(prompt)
        if s.max_tokens is not None:
            limit = min(limit, s.max_tokens)

        self.clear()  # no prompt-cache reuse between samples: prompt t/s stays honest
        # Prompt processing is timed from here (templating, tokenizing and sampler set-up are
        # not prompt work; they still count in ttft_s and total_s), as llama.cpp's t_p_eval is.
        t_decode = time.perf_counter()
        self.decode(prompt, 0, logits="last")
        if self.drafter is not None:
            self.drafter.reset()
            self.drafter.observe((len(prompt) - 1) % self.n_batch)  # the last piece's last row
        self.synchronize()
        t_prompt = time.perf_counter()

        stream = _TokenStream(self, sampler, list(prompt), limit, self.drafter)
        out = bytearray()
        stops = [x.encode() for x in s.stop]
        finish = "length"
        t_first = t_last = None  # first and last generated (non-EOG) token
        for token, now in stream:
            if token is None:  # end of generation sampled
                finish = "stop"
                t_first = t_first or now
                break
            if t_first is None:
                t_first = now
            t_last = now
            out += self.llama.detokenize([token])
            if stops and _ends_with_stop(out, stops):
                finish = "stop"
                break
        t_end = time.perf_counter()
        text = out.decode("utf-8", errors="replace")
        for stop in s.stop:  # the stop string itself is not part of the answer
            if stop and stop in text:
                text = text[: text.index(stop)]
        gen_s = (t_last - t_first) if (t_first is not None and t_last is not None) else None
        return Generation(
            text=text,
            finish_reason=finish,
            prompt_tokens=len(prompt),
            completion_tokens=stream.n_generated,
            cached_prompt_tokens=0,
            ttft_s=(t_first - t0) if t_first is not None else None,
            prompt_eval_s=t_prompt - t_decode,
            generation_s=gen_s,
            total_s=t_end - t0,
            draft=stream.draft_stats if self.drafter is not None else None,
        )

    def cancel(self) -> None:
        """Nothing to stop: generation runs in the caller's thread, which Ctrl-C interrupts."""

    def close(self) -> None:
        if self.drafter is not None:
            self.drafter.close()
        self.llama.close()


class _TokenStream:
    """Yields (token, time) as tokens are sampled; (None, time) when an EOG token is sampled.

    With a drafter, each step decodes [last token + drafted tokens] in one batch and samples every
    position; drafted tokens are accepted while they equal what the target model samples, and the
    first disagreement (or one token past the last draft) is the target's own next token.
    """

    def __init__(self, backend: LlamaCppBackend, sampler, history: list[int], limit: int, drafter):
        self.b = backend
        self.sampler = sampler
        self.history = history
        self.limit = limit
        self.drafter = drafter
        self.n_generated = 0
        self.draft_stats = DraftStats()

    def __iter__(self):
        b = self.b
        n_past = len(self.history)
        token = b.sample(self.sampler, -1)
        while True:
            if b.is_eog(token):
                yield None, time.perf_counter()
                return
            self.n_generated += 1
            self.history.append(token)
            yield token, time.perf_counter()
            if self.n_generated >= self.limit or n_past + 1 >= b.n_ctx:
                return
            room = min(self.limit - self.n_generated, b.n_ctx - n_past - 1)
            drafts = self._draft(room - 1) if self.drafter is not None else []
            b.decode([token] + drafts, n_past, logits="all" if drafts else "last")
            if not drafts:
                n_past += 1
                token = b.sample(self.sampler, -1)
                if self.drafter is not None:
                    self.drafter.observe(0)
                continue
            self.draft_stats.draft_steps += 1
            self.draft_stats.drafted_tokens += len(drafts)
            accepted = 0
            for i in range(len(drafts) + 1):
                token = b.sample(self.sampler, i)
                if i < len(drafts) and token == drafts[i] and not b.is_eog(token):
                    accepted += 1
                    self.n_generated += 1
                    self.history.append(token)
                    yield token, time.perf_counter()
                    if self.n_generated >= self.limit:
                        self.draft_stats.accepted_tokens += accepted
                        return
                    continue
                break
            self.draft_stats.accepted_tokens += accepted
            self.drafter.observe(accepted)  # the row whose output is the new last token
            n_past += 1 + accepted
            # Rejected drafts leave KV entries past n_past: drop them before the next decode.
            b.rollback(n_past)

    def _draft(self, room: int) -> list[int]:
        if room <= 0:
            return []
        drafts = self.drafter.draft(np.asarray(self.history, dtype=np.intc))
        return [int(t) for t in drafts[:room]]


def _raise_template_error(message: str):
    raise ValueError(message)


def _ends_with_stop(out: bytearray, stops: list[bytes]) -> bool:
    tail = bytes(out[-256:])
    return any(stop in tail for stop in stops)


_SIZE_RE: dict[str, re.Pattern[str]] = {
    "kv": re.compile(r"llama_kv_cache(?:_\w+)?: size =\s*([\d.]+) MiB"),
    "compute": re.compile(r"compute buffer size =\s*([\d.]+) MiB"),
    "model": re.compile(r"model buffer size =\s*([\d.]+) MiB"),
}


def parse_load_log(log: str) -> LoadFacts:
    """The buffer sizes in a load log (llama-cpp-python's, or llama-server's: the same lines)."""
    def total(kind: str) -> int | None:
        values = [float(v) for v in _SIZE_RE[kind].findall(log)]
        return int(sum(values) * _MIB) if values else None

    return LoadFacts(
        kv_cache_bytes=total("kv"),
        compute_buffer_bytes=total("compute"),
        model_buffer_bytes=total("model"),
    )


def make_drafter(
    cfg: LlamaCppBackendConfig, resolve_draft: Callable[[str], Any], target_vocab: str | None
) -> Drafter | None:
    """The drafter `backend.speculative` asks for; a draft model must share the vocabulary."""
    if cfg.speculative in ("none", "mtp"):  # mtp: open_backend, once the target is loaded
        return None
    if cfg.speculative == "prompt_lookup":
        return PromptLookupDrafter(cfg.num_pred_tokens)
    draft = resolve_draft(cfg.draft_model)
    if target_vocab and draft.gguf.vocab_sha256 and draft.gguf.vocab_sha256 != target_vocab:
        raise BackendError(
            f"draft model {cfg.draft_model} has a different vocabulary from the target; "
            "speculative decoding needs the same tokenizer"
        )
    # The drafter rolls its own cache back after every step: it needs the full-size window cache.
    draft_cfg = cfg.model_copy(update={"speculative": "none", "chat_template": False, "swa_full": True})
    return ModelDrafter(LlamaCppBackend(draft_cfg, str(draft.path)), cfg.num_pred_tokens)


BACKEND = LlamaCppBackend


def open_file(bcfg: LlamaCppBackendConfig, model_path: str, **overrides) -> LlamaCppBackend:
    """A model file loaded with these settings, no drafter (a KLD reference, lm-eval's checker)."""
    return LlamaCppBackend(bcfg, model_path, **overrides)


class VocabTokenizer:
    """A GGUF's tokenizer alone (vocab_only: no weights), so lm-eval can count a server's tokens."""

    def __init__(self, model_path: str):
        self.llama = llama_cpp.Llama(model_path, vocab_only=True, verbose=False)
        self.bos = int(self.llama.token_bos())
        self.eos = int(self.llama.token_eos())
        self.add_bos = bool(llama_cpp.llama_vocab_get_add_bos(self.llama._model.vocab))

    def encode(self, text: str) -> list[int]:
        return self.llama.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def decode(self, tokens: list[int]) -> str:
        return self.llama.detokenize(list(tokens)).decode("utf-8", errors="replace")

    def token_text(self, token: int) -> str:
        return self.llama._model.token_get_text(token)


def open_backend(cfg, **overrides):
    """Resolve the model file and load it once; `overrides` (n_ctx, n_batch) come from the task."""
    from evalkit.backends import OpenedBackend
    from evalkit.models import load_model_config, resolve_model

    resolved = resolve_model(cfg.model)
    refuse_mtp_only(cfg.model.name, resolved.gguf.architecture, "model")
    bcfg = cfg.backend
    draft_name = mtp_drafter_name(cfg) if bcfg.speculative == "mtp" else bcfg.draft_model
    draft = resolve_model(load_model_config(draft_name)) if draft_name and bcfg.speculative != "prompt_lookup" else None
    if draft is not None and bcfg.speculative == "draft":
        refuse_mtp_only(draft_name, draft.gguf.architecture, "speculative=draft model")
    drafter = make_drafter(bcfg, lambda name: draft, resolved.gguf.vocab_sha256)
    backend = LlamaCppBackend(bcfg, str(resolved.path), drafter=drafter, **overrides)
    if draft is not None:
        backend.draft_name, backend.draft_path = draft_name, str(draft.path)
    if bcfg.speculative == "mtp":
        from evalkit.backends.llama_cpp.mtp import MtpDrafter

        try:  # the MTP context shares the target's: it can only be made after the target's
            backend.drafter = MtpDrafter(backend, str(draft.path), draft_name, bcfg.num_pred_tokens)
        except BaseException:
            backend.close()
            raise
    return OpenedBackend(backend=backend, model=resolved.record(), resolved=resolved)
