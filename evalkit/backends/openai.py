"""Any OpenAI-compatible server (llama-server, llama-swap, vLLM, ollama, LM Studio) as a backend.

Built on the official `openai` client with its own retries switched off: evalkit retries the
whole request *including the stream*, so a connection dropped halfway through a generation is
retried too, and exactly these are retried: connection errors and timeouts, HTTP 408/429/5xx,
and a stream that ends without a finish reason (a server that cut the request off). Anything
else (400, 401, 404, an error event in the stream) fails the sample at once.

Timings use the same definitions as the in-process backend, measured on the wall clock of the
stream: time to first token = request start -> first content chunk; generation seconds = first
-> last content chunk, so the runner's gen tokens/s = (completion_tokens - 1) / generation_s.
Token counts come from the server's `usage` (asked for with stream_options.include_usage); a
server that does not send usage while streaming (llama-cpp-python's) gets its content chunks
counted instead, and the record says so (`token_counts: "chunks"`).

Each attempt runs on a daemon thread (`_Feed`) that the worker waits on, so `timeout_s` is a
wall-clock bound per attempt and Ctrl-C drops in-flight requests at once, even ones a queueing
server has not answered yet.

The API key is read from the environment variable `backend.api_key_env` and only ever handed to
the client; every message evalkit writes passes through `_redact` in case a server echoes it.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import openai

from evalkit.backends.base import BackendInfo, Capability, DraftStats, Generation, GenerationRequest, SampleFailed
from evalkit.config import OpenAIBackendConfig
from evalkit.errors import BackendError

# The request loggers would otherwise write every request line into Hydra's job log.
for _name in ("httpx", "httpx2", "httpcore", "openai"):
    logging.getLogger(_name).setLevel(logging.WARNING)

MAX_BACKOFF_S = 30.0
MAX_RETRY_AFTER_S = 60.0
# llama-server's `timings` fields worth keeping (it sends more: per-token ms and the like).
TIMING_KEYS = (
    "prompt_n",
    "prompt_ms",
    "prompt_per_second",
    "predicted_n",
    "predicted_ms",
    "predicted_per_second",
    "cache_n",
    "draft_n",
    "draft_n_accepted",
)


class _Retryable(Exception):
    """A failure worth another attempt (connection, timeout, 408/429/5xx, cut-off stream)."""

    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.retry_after = retry_after


class _Cancelled(Exception):
    pass


class RequestCancelled(Exception):
    """Ctrl-C/SIGTERM stopped this request: not a failure, so nothing is recorded for it."""


@dataclass
class _Counters:
    """Request statistics reported in results.json (backend.extra)."""

    requests: int = 0
    retries: int = 0
    failed_samples: int = 0
    usage_counts: int = 0  # samples whose token counts came from the server's usage
    chunk_counts: int = 0  # samples whose completion tokens were counted from stream chunks
    timings_seen: int = 0  # samples with a llama-server `timings` object
    server_models: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, **deltas: int) -> None:
        with self.lock:
            for k, v in deltas.items():
                setattr(self, k, getattr(self, k) + v)


class OpenAIBackend:
    """Generation through an OpenAI-compatible HTTP API; `concurrency` requests at a time."""

    type = "openai"
    capabilities = frozenset({Capability.TEXT_GENERATION, Capability.OPENAI_API})

    def __init__(self, cfg: OpenAIBackendConfig, *, api_key: str | None = None, base_url: str | None = None):
        self.cfg = cfg
        self.base_url = (base_url or cfg.base_url).rstrip("/")
        self.concurrency = cfg.concurrency  # the generation runner runs this many workers
        self._secret = api_key or ""
        self._cancel = threading.Event()
        self.counters = _Counters()
        self.request_model = cfg.model
        self.listed_models: list[str] = []
        self.client = openai.OpenAI(
            base_url=self.base_url,
            api_key=api_key or "no-key",  # the client insists on one; keyless servers ignore it
            max_retries=0,  # ours, below: they cover the stream as well as the request
            timeout=openai.Timeout(cfg.timeout_s, connect=min(cfg.timeout_s, 10.0)),
        )

    # ---------------------------------------------------------------- opening

    def check_reachable(self) -> None:
        """GET /models with the configured retries: a one-line BackendError when nobody answers."""
        attempts = self.cfg.max_retries + 1
        last = ""
        for attempt in range(attempts):
            try:
                page = self.client.models.list()
                self.listed_models = [m.id for m in page.data]
                break
            except openai.AuthenticationError as exc:
                raise BackendError(
                    f"the server at {self.base_url} rejected the API key (HTTP {exc.status_code}); "
                    f"set the right key in ${self.cfg.api_key_env}"
                ) from None
            except openai.PermissionDeniedError as exc:
                raise BackendError(
                    f"the server at {self.base_url} refused access (HTTP {exc.status_code}); "
                    f"check the key in ${self.cfg.api_key_env}"
                ) from None
            except openai.NotFoundError:
                return  # the server answers but does not list models: usable all the same
            except openai.APIStatusError as exc:
                if exc.status_code < 500 and exc.status_code not in (408, 429):
                    return  # it answered; generation requests will say what is wrong
                last = f"HTTP {exc.status_code}"
            except openai.APIConnectionError as exc:
                last = _connection_reason(exc)
            if attempt + 1 < attempts:
                time.sleep(self._backoff(attempt))
        else:
            raise BackendError(
                self._redact(f"cannot reach the server at {self.base_url} after {attempts} attempt(s): {last}")
            )
        if self.request_model in ("", "default") and len(self.listed_models) == 1:
            # One model served and none named: ask for it by the name the server gives it.
            self.request_model = self.listed_models[0]

    # ---------------------------------------------------------------- description

    def info(self) -> BackendInfo:
        cfg, c = self.cfg, self.counters
        return BackendInfo(
            type=self.type,
            build=None,
            device=f"remote ({urlsplit(self.base_url).netloc})",
            gpu_offload=False,
            settings={
                "base_url": self.base_url,
                "mode": cfg.mode,
                "concurrency": cfg.concurrency,
                "stream": cfg.stream,
                "timeout_s": cfg.timeout_s,
                "max_retries": cfg.max_retries,
                "backoff_s": cfg.backoff_s,
            },
            output_settings={
                "model": self.request_model,
                "mode": cfg.mode,
                "sampling_extras": cfg.sampling_extras,
                "extra_body": cfg.extra_body,
            },
            chat_template="server" if cfg.mode == "chat" else "none",
            extra={
                "api_key_env": cfg.api_key_env,
                "api_key_set": bool(self._secret),
                "listed_models": self.listed_models,
                "server_models": sorted(c.server_models),
                "requests": c.requests,
                "retries": c.retries,
                "failed_samples": c.failed_samples,
                "token_counts": {"usage": c.usage_counts, "chunks": c.chunk_counts},
                "samples_with_timings": c.timings_seen,
            },
        )

    # ---------------------------------------------------------------- generation

    def generate(self, request: GenerationRequest) -> Generation:
        """One sample, retried on transient failures; SampleFailed when it still fails."""
        attempts = self.cfg.max_retries + 1
        reason = ""
        for attempt in range(attempts):
            if self._cancel.is_set():
                raise RequestCancelled()
            self.counters.add(requests=1)
            try:
                gen = self._once(request)
                gen.extra["attempts"] = attempt + 1
                return gen
            except _Cancelled:
                raise RequestCancelled() from None
            except _Retryable as exc:
                reason = str(exc)
                if attempt + 1 < attempts:
                    self.counters.add(retries=1)
                    delay = exc.retry_after if exc.retry_after is not None else self._backoff(attempt)
                    if self._cancel.wait(delay):
                        raise RequestCancelled() from None
            except SampleFailed as exc:
                self.counters.add(failed_samples=1)
                raise SampleFailed(self._redact(f"{exc} (attempt {attempt + 1})")) from None
        self.counters.add(failed_samples=1)
        raise SampleFailed(self._redact(f"{reason} (after {attempts} attempt(s))"))

    def _once(self, request: GenerationRequest) -> Generation:
        cfg = self.cfg
        params = self._params(request)
        if cfg.mode == "chat":
            call = self.client.chat.completions.create
            params["messages"] = request.messages
        else:
            call = self.client.completions.create
            params["prompt"] = "\n\n".join(m["content"] for m in request.messages)
        if cfg.stream:
            params.update(stream=True, stream_options={"include_usage": True})
        t0 = time.perf_counter()
        feed = _Feed(lambda: call(**params), self._cancel, cfg.stream, t0 + cfg.timeout_s, cfg.timeout_s)
        try:
            if not cfg.stream:
                return self._unary(feed.value(), t0)
            return self._consume(feed, t0)
        except openai.APIStatusError as exc:
            raise self._status_failure(exc) from None
        except openai.APIConnectionError as exc:
            raise _Retryable(_connection_reason(exc)) from None
        except openai.APIError as exc:  # an error event inside the stream: the server's verdict
            raise SampleFailed(f"server error: {_short(exc.message)}") from None
        finally:
            feed.abandon()

    def _params(self, request: GenerationRequest) -> dict[str, Any]:
        s = request.sampling
        params: dict[str, Any] = {
            "model": self.request_model,
            "temperature": s.temperature,
            "top_p": s.top_p,
            "seed": request.seed,
        }
        if s.max_tokens is not None:
            params["max_tokens"] = s.max_tokens
        if s.stop:
            params["stop"] = list(s.stop)
        extra: dict[str, Any] = {}
        if self.cfg.sampling_extras:  # llama-server, llama-cpp-python, vLLM, LM Studio read these
            extra.update(top_k=s.top_k, min_p=s.min_p, repeat_penalty=s.repeat_penalty)
        extra.update(self.cfg.extra_body)
        if extra:
            params["extra_body"] = extra
        return params

    def _consume(self, feed: "_Feed", t0: float) -> Generation:
        parts: list[str] = []
        n_chunks = reasoning_chars = 0
        t_first = t_last = None
        finish = None
        usage = timings = None
        server_model = None
        for chunk, now in feed.chunks():
            server_model = getattr(chunk, "model", None) or server_model
            extra = chunk.model_extra or {}
            if isinstance(extra.get("timings"), dict):
                timings = extra["timings"]
            if getattr(chunk, "usage", None) is not None:
                usage = chunk.usage
            for choice in chunk.choices or []:
                if self.cfg.mode == "chat":
                    delta = choice.delta
                    piece = delta.content if delta is not None else None
                    thought = (delta.model_extra or {}).get("reasoning_content") if delta is not None else None
                else:
                    piece, thought = choice.text, None
                if piece or thought:
                    t_first = t_first if t_first is not None else now
                    t_last = now
                    n_chunks += 1
                if piece:
                    parts.append(piece)
                if thought:
                    reasoning_chars += len(thought)
                if choice.finish_reason:
                    finish = choice.finish_reason
        t_end = time.perf_counter()
        if finish is None:
            # llama-cpp-python's server ends a stream this way when another request interrupts it.
            raise _Retryable(f"the stream ended without a finish reason after {n_chunks} chunk(s)")
        gen = self._generation(
            text="".join(parts),
            finish=finish,
            usage=usage,
            timings=timings,
            n_chunks=n_chunks,
            ttft_s=(t_first - t0) if t_first is not None else None,
            generation_s=(t_last - t_first) if t_first is not None and t_last is not None else None,
            total_s=t_end - t0,
            server_model=server_model,
        )
        if reasoning_chars:
            gen.extra["reasoning_chars"] = reasoning_chars
        return gen

    def _unary(self, response, t0: float) -> Generation:
        """stream=false: no time to first token and no generation seconds (only the server's)."""
        t_end = time.perf_counter()
        choice = response.choices[0]
        text = (choice.message.content or "") if self.cfg.mode == "chat" else choice.text
        return self._generation(
            text=text,
            finish=choice.finish_reason or "stop",
            usage=response.usage,
            timings=(response.model_extra or {}).get("timings"),
            n_chunks=None,
            ttft_s=None,
            generation_s=None,
            total_s=t_end - t0,
            server_model=response.model,
        )

    def _generation(self, *, text, finish, usage, timings, n_chunks, ttft_s, generation_s, total_s, server_model) -> Generation:
        timings = {k: timings[k] for k in TIMING_KEYS if k in timings} if isinstance(timings, dict) else None
        prompt_tokens: int | None = None
        cached = 0
        if usage is not None:
            source = "usage"
            completion = int(usage.completion_tokens)
            prompt_tokens = int(usage.prompt_tokens)
            details = getattr(usage, "prompt_tokens_details", None)
            cached = int(getattr(details, "cached_tokens", None) or 0)
            self.counters.add(usage_counts=1)
        elif timings and "predicted_n" in timings:
            source = "timings"
            completion = int(timings["predicted_n"])
        else:
            source = "chunks"
            completion = n_chunks or 0
            self.counters.add(chunk_counts=1)
        draft = None
        prompt_eval_s = None
        if timings:
            self.counters.add(timings_seen=1)
            if "cache_n" in timings:
                cached = int(timings["cache_n"])
            if prompt_tokens is None and "prompt_n" in timings:
                prompt_tokens = int(timings["prompt_n"]) + cached
            if timings.get("prompt_ms") is not None:
                prompt_eval_s = float(timings["prompt_ms"]) / 1000.0
            if "draft_n" in timings:
                draft = DraftStats(
                    drafted_tokens=int(timings["draft_n"]),
                    accepted_tokens=int(timings.get("draft_n_accepted", 0)),
                )
        if server_model:
            with self.counters.lock:
                self.counters.server_models.add(server_model)
        return Generation(
            text=text,
            finish_reason="length" if finish == "length" else "stop",
            prompt_tokens=prompt_tokens,
            completion_tokens=completion,
            cached_prompt_tokens=cached,
            ttft_s=ttft_s,
            prompt_eval_s=prompt_eval_s,
            generation_s=generation_s,
            total_s=total_s,
            draft=draft,
            server_timings=timings,
            server_model=server_model,
            extra={"token_counts": source, "server_finish_reason": finish},
        )

    def _status_failure(self, exc: openai.APIStatusError) -> Exception:
        code = exc.status_code
        detail = _short(_body_message(exc))
        reason = f"HTTP {code}" + (f": {detail}" if detail else "")
        if code in (408, 429) or code >= 500:
            return _Retryable(reason, _retry_after(exc))
        return SampleFailed(reason)

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with jitter: backoff_s * 2^attempt, times 0.5..1.5, capped."""
        base = min(self.cfg.backoff_s * (2**attempt), MAX_BACKOFF_S)
        return base * (0.5 + random.random())

    def _redact(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret else text

    # ---------------------------------------------------------------- shutdown

    def cancel(self) -> None:
        """Ctrl-C: in-flight requests stop at their next chunk, waiting retries end at once."""
        self._cancel.set()

    def close(self) -> None:
        self._cancel.set()
        self.client.close()


class _Feed:
    """One HTTP request run on a daemon thread, its chunks handed over a queue with arrival times.

    Why a thread: a request waiting for response headers (a server that queues requests) blocks
    in a socket read nothing can interrupt from another thread. The caller waits on the queue
    instead, so Ctrl-C and `timeout_s` act within 0.1 s whatever the server does, and an abandoned
    daemon thread never keeps the process alive. Chunks are stamped on arrival, in the thread.
    """

    def __init__(self, start, cancel: threading.Event, stream: bool, deadline: float, timeout_s: float):
        self._q: queue.SimpleQueue = queue.SimpleQueue()
        self._cancel = cancel
        self._stop = threading.Event()
        self._deadline = deadline
        self._timeout_s = timeout_s
        threading.Thread(target=self._run, args=(start, stream), daemon=True, name="evalkit-http").start()

    def _run(self, start, stream: bool) -> None:
        try:
            response = start()
            if not stream:
                self._q.put(("value", response, time.perf_counter()))
                return
            try:
                for chunk in response:
                    self._q.put(("chunk", chunk, time.perf_counter()))
                    if self._stop.is_set() or self._cancel.is_set():
                        return
            finally:
                response.close()
            self._q.put(("end", None, time.perf_counter()))
        except BaseException as exc:  # handed to the waiting caller
            self._q.put(("error", exc, time.perf_counter()))

    def _next(self):
        while True:
            if self._cancel.is_set():
                raise _Cancelled()
            if time.perf_counter() > self._deadline:
                raise _Retryable(f"timed out after {self._timeout_s:g} s")
            try:
                kind, value, t = self._q.get(timeout=0.1)
            except queue.Empty:
                continue
            if kind == "error":
                raise value
            return kind, value, t

    def value(self):
        return self._next()[1]

    def chunks(self):
        while True:
            kind, value, t = self._next()
            if kind == "end":
                return
            yield value, t

    def abandon(self) -> None:
        """The caller is done (finished, failed, timed out or cancelled): stop pumping."""
        self._stop.set()


def _connection_reason(exc: openai.APIConnectionError) -> str:
    if isinstance(exc, openai.APITimeoutError):
        return "timed out"
    cause = exc.__cause__
    while cause is not None and cause.__cause__ is not None and not str(cause):
        cause = cause.__cause__
    text = str(cause) if cause is not None else str(exc)
    if "refused" in text.lower():
        return "connection refused"
    return _short(text) or "connection error"


def _body_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict):
            return str(err.get("message") or err.get("detail") or "")
        return str(err)
    return str(body or "")


def _retry_after(exc: openai.APIStatusError) -> float | None:
    try:
        value = float(exc.response.headers.get("retry-after", ""))
    except ValueError:
        return None
    return value if 0 <= value <= MAX_RETRY_AFTER_S else None


def _short(text: str | None, n: int = 200) -> str:
    line = " ".join((text or "").split())
    return line if len(line) <= n else line[: n - 1] + "…"


def api_key_from_env(cfg: OpenAIBackendConfig) -> str | None:
    return cfg.api_key()


def remote_model_record(run_cfg, backend: OpenAIBackend):
    """What records say about a served model: the model config's identity, no file, no hash."""
    from evalkit.records import ModelRecord

    m = run_cfg.model
    served = backend.request_model
    return ModelRecord(
        name=m.name,
        family=m.family,
        variant=m.quant or "remote",
        sha256=None,
        qat=m.qat,
        provenance=f"served by {backend.base_url} as '{served}'"
        + (f" (server lists: {', '.join(backend.listed_models[:5])})" if backend.listed_models else ""),
    )


BACKEND = OpenAIBackend


def open_backend(run_cfg, **overrides):
    """Connect to the server named in the config; the model file is never resolved or fetched."""
    from evalkit.backends import OpenedBackend

    if overrides:
        raise BackendError(
            f"the openai backend cannot apply {', '.join(sorted(overrides))} (the server owns those "
            "settings); this task needs a local backend"
        )
    cfg: OpenAIBackendConfig = run_cfg.backend
    backend = OpenAIBackend(cfg, api_key=api_key_from_env(cfg))
    try:
        backend.check_reachable()
    except BaseException:
        backend.close()
        raise
    return OpenedBackend(backend=backend, model=remote_model_record(run_cfg, backend), resolved=None)
