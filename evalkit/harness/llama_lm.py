"""lm-eval's `LM` over the already-loaded llama.cpp model (registered as `evalkit-llama`).

Log-likelihoods are exact sums of log-softmax over the model's own logits, computed only for
the rows that are scored, one decode piece (<= n_batch rows) at a time: nothing of size
n_ctx x n_vocab is ever kept. Requests are scored in lexicographic token order so that the
choices of one question, and questions sharing a few-shot prefix, reuse the KV cache of their
common prefix (removed past the divergence point with seq_rm) instead of decoding it again.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
from lm_eval.api.model import TemplateLM
from lm_eval.api.registry import register_model
from lm_eval.models.utils import handle_stop_sequences
from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

from evalkit.config import SamplingConfig
from evalkit.seeds import derive_seed

if TYPE_CHECKING:
    from evalkit.backends.base import TokenAccess

# Rows of logits turned into log-probabilities at once: bounds the float32 temporary to
# ROW_CHUNK x n_vocab whatever the batch size (256k-token vocabularies stay cheap).
ROW_CHUNK = 32

# Generation kwargs lm-eval task files use, mapped onto evalkit's SamplingConfig.
_GEN_KEYS = {"temperature", "top_p", "top_k", "min_p", "repeat_penalty", "seed"}


@dataclass
class LmStats:
    """Work done, for the results record (lm-eval itself reports no timing, its issue #1755)."""

    loglikelihood_requests: int = 0
    rolling_requests: int = 0
    generate_requests: int = 0
    tokens_scored: int = 0  # continuation tokens whose log-probability was computed
    tokens_decoded: int = 0  # tokens run through the model for scoring
    tokens_reused: int = 0  # prompt tokens taken from the KV cache instead of decoded
    tokens_generated: int = 0
    scoring_s: float = 0.0  # wall time of log-likelihood requests: decode + log-softmax
    logprob_s: float = 0.0  # of which evalkit's numpy work on the logits (framework overhead)
    generate_s: float = 0.0  # wall time of generate_until requests, prompt processing included
    truncated_requests: int = 0  # contexts cut on the left to fit n_ctx
    ignored_gen_kwargs: set[str] = field(default_factory=set)

    def as_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k != "ignored_gen_kwargs"}
        d["ignored_gen_kwargs"] = sorted(self.ignored_gen_kwargs)
        # Tokens run through the model per second of scoring wall time (decode + log-softmax).
        d["scoring_tokens_per_s"] = self.tokens_decoded / self.scoring_s if self.scoring_s > 0 else None
        return d


def row_logprobs(rows: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(log p(target), target is the argmax) per row of raw logits, in float64 sums."""
    out_lp = np.empty(len(targets), dtype=np.float64)
    out_greedy = np.empty(len(targets), dtype=bool)
    for a in range(0, len(targets), ROW_CHUNK):
        block = rows[a : a + ROW_CHUNK]
        tgt = targets[a : a + ROW_CHUNK]
        m = block.max(axis=1)
        lse = m.astype(np.float64) + np.log(
            np.exp(block - m[:, None]).sum(axis=1, dtype=np.float64)
        )
        picked = block[np.arange(len(tgt)), tgt].astype(np.float64)
        out_lp[a : a + len(tgt)] = picked - lse
        out_greedy[a : a + len(tgt)] = block.argmax(axis=1) == tgt
    return out_lp, out_greedy


def common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


@register_model("evalkit-llama")
class LlamaCppLM(TemplateLM):
    """An lm-eval model over an open `LlamaCppBackend`; build it with the backend, not a string."""

    def __init__(
        self,
        backend: "TokenAccess",
        *,
        sampling: SamplingConfig | None = None,
        max_gen_toks: int = 256,
        model_id: str = "",
        reuse_prefix: bool = True,
        max_length: int | None = None,  # a shorter window than n_ctx (rolling windows, truncation)
        on_request: Callable[[str, int], None] | None = None,
    ):
        super().__init__()
        self.b = backend
        self.sampling = sampling or SamplingConfig(temperature=0.0)
        self.max_gen_toks = max_gen_toks
        self.model_id = model_id
        self._max_length = min(max_length, backend.n_ctx) if max_length else backend.n_ctx
        self.on_request = on_request or (lambda kind, total: None)  # progress: (kind, n requests)
        self.stats = LmStats()
        self.reuse_prefix = reuse_prefix and self._prefix_reuse_is_safe()
        self._kv: list[int] = []  # tokens held in the KV cache at positions 0..len-1
        bos = backend.bos_token
        self._bos = bos if bos >= 0 else None
        self._add_bos = backend.add_bos and self._bos is not None

    # ------------------------------------------------------------ identity

    def _prefix_reuse_is_safe(self) -> bool:
        """Sliding-window and recurrent caches drop what a prefix reuse would need."""
        return self.b.prefix_reuse_is_safe()

    @property
    def eot_token_id(self) -> int:
        return int(self.b.eos_token)

    @property
    def prefix_token_id(self) -> int:
        # Like lm-eval's HF model: BOS when the vocabulary has one, else end-of-text.
        return self._bos if self._bos is not None else self.eot_token_id

    @property
    def max_length(self) -> int:
        return self._max_length

    @property
    def tokenizer_name(self) -> str:
        return f"gguf-{self.model_id[:16]}" if self.model_id else "gguf"

    def tok_encode(self, string: str, add_special_tokens: bool | None = None, **kwargs) -> list[int]:
        # Special-token text (a rendered chat template) is parsed, as HF tokenizers do; BOS is
        # added where the model wants one when the sequence is assembled, not here.
        return self.b.tokenize(string, add_bos=bool(add_special_tokens) and self._add_bos, special=True)

    def tok_decode(self, tokens: list[int]) -> str:
        return self.b.detokenize(tokens)

    # ------------------------------------------------------------ chat templates

    def chat_template(self, chat_template: bool | str = False) -> str | None:
        return self.b.chat_template_source() or ""

    def apply_chat_template(self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        rendered = self.b.render_chat(chat_history, add_generation_prompt=add_generation_prompt)
        if rendered is None:
            from evalkit.errors import TaskError

            raise TaskError("task.apply_chat_template=true but the GGUF has no chat template")
        return rendered

    # ------------------------------------------------------------ scoring

    def _with_bos(self, tokens: list[int]) -> list[int]:
        if self._add_bos and (not tokens or tokens[0] != self._bos):
            return [self._bos] + tokens
        return tokens

    def loglikelihood(self, requests, disable_tqdm: bool = True) -> list[tuple[float, bool]]:
        return super().loglikelihood(requests, disable_tqdm=True)

    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, **kwargs) -> list[tuple[float, bool]]:
        prepared = []
        for key, ctx, cont in requests:
            ctx = self._with_bos(list(ctx))
            prepared.append((key, ctx, list(cont)))
        # Lexicographic order puts the choices of one question, and questions with a shared
        # prefix, next to each other: each decodes only what differs from its neighbour.
        order = sorted(range(len(prepared)), key=lambda i: prepared[i][1] + prepared[i][2])
        results: list[tuple[float, bool] | None] = [None] * len(prepared)
        for i in order:
            key, ctx, cont = prepared[i]
            lp, greedy = self.score(ctx, cont)
            results[i] = (lp, greedy)
            self.stats.loglikelihood_requests += 1
            if key is not None:
                self.cache_hook.add_partial("loglikelihood", key, (lp, greedy))
            self.on_request("loglikelihood", len(prepared))
        return results  # type: ignore[return-value]

    def score(self, context: list[int], continuation: list[int]) -> tuple[float, bool]:
        """log p(continuation | context) and whether greedy decoding would produce it."""
        if not continuation:
            return 0.0, True
        t0 = time.perf_counter()
        whole = context + continuation
        if len(whole) > self.max_length + 1:  # keep the newest tokens, like lm-eval's HF model
            whole = whole[-(self.max_length + 1) :]
            self.stats.truncated_requests += 1
        if len(continuation) > len(whole) - 1:
            continuation = whole[1:]
        inp = whole[:-1]
        first = len(whole) - len(continuation) - 1  # position whose logits predict continuation[0]
        start = self._reuse(inp, first)
        if start < first:
            self.b.decode(inp[start:first], start, logits="none")
        total_lp, all_greedy = 0.0, True
        n_batch = self.b.n_batch
        for p0 in range(first, len(inp), n_batch):
            piece = inp[p0 : p0 + n_batch]
            self.b.decode(piece, p0, logits="all")
            rows = self.b.logits(len(piece))  # reading them waits for the decode to finish
            t_np = time.perf_counter()
            targets = np.asarray(whole[p0 + 1 : p0 + 1 + len(piece)], dtype=np.intp)
            lp, greedy = row_logprobs(rows, targets)
            self.stats.logprob_s += time.perf_counter() - t_np
            total_lp += float(lp.sum())
            all_greedy = all_greedy and bool(greedy.all())
        self._kv = inp
        self.stats.tokens_decoded += len(inp) - start
        self.stats.tokens_reused += start
        self.stats.tokens_scored += len(continuation)
        self.stats.scoring_s += time.perf_counter() - t0
        return total_lp, all_greedy

    def _reuse(self, inp: list[int], first: int) -> int:
        """Keep the cached prefix shared with `inp` (never past `first`); return where to decode."""
        keep = min(common_prefix(self._kv, inp), first) if self.reuse_prefix else 0
        if keep > 0 and self.b.trim(keep):
            self._kv = inp[:keep]
            return keep
        self.b.clear()
        self._kv = []
        return 0

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        out = []
        for req in requests:
            (string,) = req.args
            tokens = self.tok_encode(string)
            windows = map(
                make_disjoint_window,
                get_rolling_token_windows(
                    token_list=tokens,
                    prefix_token=self.prefix_token_id,
                    max_seq_len=self.max_length,
                    context_len=1,
                ),
            )
            total = 0.0
            for ctx, cont in windows:
                lp, _ = self.score(list(ctx), list(cont))
                total += lp
            out.append(total)
            self.stats.rolling_requests += 1
            self.cache_hook.add_partial("loglikelihood_rolling", (string,), total)
            self.on_request("loglikelihood_rolling", len(requests))
        return out

    # ------------------------------------------------------------ generation

    def sampling_for(self, gen_kwargs: dict[str, Any]) -> SamplingConfig:
        """evalkit's sampling (greedy by default) updated by the task's generation kwargs."""
        kw = copy.deepcopy(gen_kwargs or {})
        until = handle_stop_sequences(kw.pop("until", None), eos=None)
        max_new = int(kw.pop("max_gen_toks", kw.pop("max_new_tokens", kw.pop("max_tokens", self.max_gen_toks))))
        do_sample = kw.pop("do_sample", None)
        update: dict[str, Any] = {k: kw.pop(k) for k in list(kw) if k in _GEN_KEYS}
        self.stats.ignored_gen_kwargs.update(kw)
        if do_sample is False:
            update["temperature"] = 0.0
        update["max_tokens"] = max_new
        update["stop"] = [s for s in until if s]
        return self.sampling.model_copy(update=update)

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        out = []
        for req in requests:
            context, gen_kwargs = req.args[0], req.args[1]
            sampling = self.sampling_for(gen_kwargs)
            prompt = self._with_bos(self.tok_encode(context))
            room = self.max_length - sampling.max_tokens  # type: ignore[operator]
            if room < 1:
                from evalkit.errors import TaskError

                raise TaskError(
                    f"max_gen_toks {sampling.max_tokens} leaves no room for a prompt in n_ctx {self.max_length}"
                )
            if len(prompt) > room:
                prompt = prompt[-room:]
                self.stats.truncated_requests += 1
            seed = derive_seed(sampling.seed, context)
            gen = self.b.generate_tokens(prompt, sampling, seed)
            self._kv = []  # generation starts from a cleared cache and leaves its own tokens
            self.stats.generate_requests += 1
            self.stats.tokens_generated += gen.completion_tokens
            self.stats.generate_s += gen.total_s
            out.append(gen.text)
            self.cache_hook.add_partial("generate_until", (context, gen_kwargs), gen.text)
            self.on_request("generate_until", len(requests))
        return out

    def get_model_info(self) -> dict[str, Any]:
        return {"model_sha256": self.model_id, "backend": "llama.cpp (evalkit-llama)"}
