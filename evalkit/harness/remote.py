"""Benchmarks against an OpenAI-compatible server through lm-eval's own completions models.

Log-likelihood over HTTP needs `echo` + `logprobs` (the prompt's token log-probabilities):
llama.cpp's llama-server ignores `echo`, and llama-cpp-python's server returns values shifted
by one position (its issue #1983: with 0.3.36, " Paris" after "The capital of France is" scores
-8.45 there against -0.26 in-process). So before a server's log-likelihoods are used, a probe
checks that it echoes the prompt at all, and a few requests are scored both remotely and
in-process with the local copy named by backend.tokenizer_model; a disagreement refuses the run
(task.remote_check=refuse) or is recorded next to the scores (flag).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import requests as http
from lm_eval.api.registry import register_model
from lm_eval.models.openai_completions import LocalChatCompletion, LocalCompletionsAPI

from evalkit.errors import BackendError

# Remote and in-process log-likelihoods agree when within ABS_TOL + REL_TOL * |in-process|
# nats: room for a different batch split or kernel path, far below the echo bug's size.
ABS_TOL = 0.05
REL_TOL = 0.02

# Fixed requests the check scores both ways (independent of lm-eval's cache and of the task).
CHECK_PAIRS: list[tuple[str, str]] = [
    ("The capital of France is", " Paris"),
    ("Question: What is 7 + 5?\nAnswer:", " 12"),
    ("The sun rises in the", " east"),
    ("Water freezes at zero degrees", " Celsius"),
    ("One, two, three, four,", " five"),
]


def LocalTokenizer(model_path: str):
    """The GGUF's own tokenizer (vocab only) so lm-eval can count context tokens."""
    from evalkit.backends import open_tokenizer

    return open_tokenizer(model_path)


@dataclass
class RemoteCheck:
    """Server log-likelihoods against in-process ones on the same requests."""

    policy: str
    agree: bool | None = None
    n_checked: int = 0
    max_abs_diff: float | None = None
    pairs: list[dict[str, Any]] = field(default_factory=list)
    note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class _KeyFromEnv:
    """The key evalkit read from the environment, instead of lm-eval's own OPENAI_API_KEY lookup."""

    _api_key: str = ""

    @property
    def api_key(self) -> str:  # type: ignore[override]
        return self._api_key

    @property
    def header(self) -> dict:  # type: ignore[override]
        return {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}


@register_model("evalkit-completions")
class RemoteCompletionsLM(_KeyFromEnv, LocalCompletionsAPI):
    """lm-eval's `local-completions` with a local GGUF tokenizer and a checked log-likelihood."""

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str | None = None,
        tokenizer: Any = None,  # evalkit.backends.open_tokenizer(...)
        reference_lm=None,  # a callable returning an in-process LlamaCppLM (loaded on first use)
        check_policy: str = "refuse",
        check_items: int = 3,  # how many of CHECK_PAIRS
        **kwargs: Any,
    ):
        super().__init__(
            base_url=base_url,
            model=model,
            tokenizer_backend=None,
            tokenized_requests=False,
            **kwargs,
        )
        self._api_key = api_key or ""
        self.evalkit_tokenizer = tokenizer
        if tokenizer is not None:
            self.tokenizer = tokenizer
            self.tokenizer_backend = "evalkit"
        self._reference_lm = reference_lm
        self.check = RemoteCheck(policy=check_policy)
        self._check_items = check_items

    # -------------------------------------------------------------- plumbing for lm-eval

    @property
    def eot_token_id(self):  # type: ignore[override]
        return self.evalkit_tokenizer.eos if self.evalkit_tokenizer else None

    @property
    def prefix_token_id(self):  # type: ignore[override]
        t = self.evalkit_tokenizer
        if t is None:
            return None
        return t.bos if t.bos >= 0 else t.eos

    @property
    def eos_string(self):  # type: ignore[override]
        t = self.evalkit_tokenizer
        return t.token_text(t.eos) if t is not None and t.eos >= 0 else None

    def tok_encode(self, string, left_truncate_len=None, add_special_tokens=False, **kwargs):
        if self.evalkit_tokenizer is None:
            return super().tok_encode(string, left_truncate_len=left_truncate_len, **kwargs)
        enc = self.evalkit_tokenizer.encode
        out = enc(string) if isinstance(string, str) else [enc(s) for s in string]
        if left_truncate_len:
            out = out[-left_truncate_len:] if isinstance(string, str) else [o[-left_truncate_len:] for o in out]
        return out

    def decode_batch(self, tokens: list[list[int]]) -> list[str]:
        return [self.evalkit_tokenizer.decode(t) for t in tokens]  # type: ignore[union-attr]

    def parse_logprobs(self, outputs, tokens=None, ctxlens=None, **kwargs) -> list[tuple[float, bool]]:
        """The continuation's entries of `echo`ed prompt log-probabilities.

        Servers differ in whether the generated token is appended and whether a BOS they added
        is listed; the continuation is located by counting from the prompt's own start.
        """
        res = []
        outputs = outputs if isinstance(outputs, list) else [outputs]
        flat_tokens = list(tokens or [])
        i = 0
        for out in outputs:
            for choice in sorted(out["choices"], key=lambda c: c["index"]):
                toks, ctxlen = flat_tokens[i], ctxlens[i]
                i += 1
                lp = (choice.get("logprobs") or {}).get("token_logprobs")
                if not isinstance(lp, list) or len(lp) < len(toks):
                    raise BackendError(_no_echo(self.base_url))
                offset = 0
                t = self.evalkit_tokenizer
                names = (choice.get("logprobs") or {}).get("tokens") or []
                if t is not None and t.add_bos and names and names[0] == t.token_text(t.bos):
                    offset = 1
                span = slice(ctxlen + offset, len(toks) + offset)
                values = lp[span]
                tops = (choice["logprobs"].get("top_logprobs") or [None] * len(lp))[span]
                if any(v is None for v in values):
                    raise BackendError(f"the server at {self.base_url} returned null log-probabilities")
                greedy = all(top is None or v >= max(top.values()) - 1e-6 for v, top in zip(values, tops))
                res.append((float(sum(values)), bool(greedy)))
        return res

    # -------------------------------------------------------------- the checks

    def loglikelihood(self, requests, disable_tqdm: bool = True):
        self._need_tokenizer()
        return super().loglikelihood(requests, disable_tqdm=True)

    def _need_tokenizer(self) -> None:
        if self.evalkit_tokenizer is None:
            raise BackendError(
                "loglikelihood tasks over a server need backend.tokenizer_model=<conf/model name of the "
                "served GGUF>: lm-eval counts context tokens, and evalkit checks the server's "
                "log-likelihoods against that model in-process"
            )

    def verify(self) -> None:
        """Before any log-likelihood is used (and whatever lm-eval's cache holds): does the
        server echo prompt log-probabilities, and do they match in-process scoring?"""
        from lm_eval.api.instance import Instance

        self._need_tokenizer()
        self._probe_echo()
        if self.check.policy == "off":
            self.check.note = "not checked (task.remote_check=off)"
            return
        pairs = CHECK_PAIRS[: self._check_items]
        sample = [
            Instance(request_type="loglikelihood", doc={}, arguments=pair, idx=i)
            for i, pair in enumerate(pairs)
        ]
        self._compare(sample)

    def _probe_echo(self) -> None:
        payload = {
            "model": self.model,
            "prompt": "The capital of France is Paris",
            "max_tokens": 1,
            "temperature": 0,
            "logprobs": 1,
            "echo": True,
        }
        try:
            r = http.post(self.base_url, json=payload, headers=self.header, timeout=self.timeout)
        except http.RequestException as exc:
            raise BackendError(f"cannot reach {self.base_url}: {exc}") from None
        if r.status_code >= 400:
            raise BackendError(f"{_no_echo(self.base_url)} (HTTP {r.status_code}: {r.text[:120]})")
        try:
            choice = r.json()["choices"][0]
            lp = choice["logprobs"]["token_logprobs"]
        except (KeyError, IndexError, TypeError, ValueError):
            raise BackendError(_no_echo(self.base_url)) from None
        n_prompt = len(self.evalkit_tokenizer.encode(payload["prompt"]))  # type: ignore[union-attr]
        if not isinstance(lp, list) or len(lp) < n_prompt:
            raise BackendError(_no_echo(self.base_url))

    def _compare(self, sample) -> None:
        local = self._reference_lm() if self._reference_lm is not None else None
        if local is None:
            self.check.note = "no in-process model to compare with"
            return
        remote_vals = super().loglikelihood(sample, disable_tqdm=True)  # no cache hook set yet
        local_vals = local.loglikelihood(sample)
        worst = 0.0
        agree = True
        for req, (r_lp, r_g), (l_lp, l_g) in zip(sample, remote_vals, local_vals):
            diff = abs(r_lp - l_lp)
            ok = diff <= ABS_TOL + REL_TOL * abs(l_lp)
            agree = agree and ok
            worst = max(worst, diff)
            ctx, cont = req.args
            self.check.pairs.append(
                {
                    "context_tail": ctx[-60:],
                    "continuation": cont,
                    "remote": r_lp,
                    "in_process": l_lp,
                    "remote_greedy": r_g,
                    "in_process_greedy": l_g,
                    "agree": ok,
                }
            )
        self.check.agree = agree
        self.check.n_checked = len(sample)
        self.check.max_abs_diff = worst if math.isfinite(worst) else None
        if not agree:
            first = next(p for p in self.check.pairs if not p["agree"])
            msg = (
                f"the server's log-likelihoods disagree with in-process scoring of the same model: "
                f"{first['continuation']!r} scores {first['remote']:.3f} remotely vs "
                f"{first['in_process']:.3f} in-process (max |diff| {worst:.3f} nats over "
                f"{len(sample)} requests); llama-cpp-python's server shifts echoed log-probabilities "
                f"by one token (its issue #1983)"
            )
            self.check.note = msg
            if self.check.policy == "refuse":
                raise BackendError(msg + "; task.remote_check=flag runs it anyway, marked")


@register_model("evalkit-chat-completions")
class RemoteChatLM(_KeyFromEnv, LocalChatCompletion):
    """lm-eval's `local-chat-completions` with evalkit's key handling (generation tasks only)."""

    def __init__(self, *, base_url: str, model: str, api_key: str | None = None, **kwargs: Any):
        super().__init__(base_url=base_url, model=model, **kwargs)
        self._api_key = api_key or ""

    def loglikelihood(self, requests, **kwargs):
        raise BackendError(
            "task.apply_chat_template=true over a server uses chat completions, which return no "
            "prompt log-probabilities: run multiple-choice tasks without it (completions endpoint)"
        )

    def loglikelihood_rolling(self, requests, **kwargs):
        return self.loglikelihood(requests)


def _no_echo(url: str) -> str:
    return (
        f"the server at {url} does not return prompt log-probabilities (echo + logprobs), which "
        "loglikelihood tasks need; llama.cpp's llama-server ignores echo. Use a server that "
        "supports it (vLLM, llama-cpp-python's server) or generation tasks only"
    )


def completions_url(base_url: str, chat: bool) -> str:
    base = base_url.rstrip("/")
    for suffix in ("/chat/completions", "/completions"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
    return base + ("/chat/completions" if chat else "/completions")


def server_fingerprint(base_url: str, api_key: str | None, timeout: float = 10.0) -> str:
    """The model ids a server lists (GET /models), for keying lm-eval's cache of its answers."""
    models_url = completions_url(base_url, chat=False).rsplit("/completions", 1)[0] + "/models"
    try:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        r = http.get(models_url, headers=headers, timeout=timeout)
        ids = sorted(str(m.get("id")) for m in r.json().get("data", [])) if r.ok else []
        return json.dumps(ids) if ids else f"unlisted (HTTP {r.status_code})"
    except (http.RequestException, ValueError, AttributeError):
        return "unlisted"
