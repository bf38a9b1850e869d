"""task=speed: llama-bench's measurement, run on evalkit's own loaded model.

The method is llama-bench's (tools/llama-bench/llama-bench.cpp), step for step, so the figures
can be set beside its own:
- random token ids (BOS first where the model adds one), so no prompt cache can skip work;
- pp<N>: N tokens decoded in n_batch pieces, then one synchronize; tg<N>: N single-token
  decodes, each synchronized; pp<N>+tg<M>: both, timed together; tokens/s = (N + M) / seconds;
- per test: a warm-up (the whole prompt, one generated token), then `repetitions` timed runs,
  the KV cache cleared before each; with a depth, the cache is first filled with that many
  tokens (outside the timed part; the filled state is saved once and restored per repetition);
- mean and sample standard deviation over the repetitions' tokens/s, every sample kept.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field, model_validator

from evalkit.config import TaskBase
from evalkit.errors import ConfigError
from evalkit.metrics.moments import mean, sample_sd
from evalkit.records import RunResult, SpeedSummary, SpeedTest


@dataclass(frozen=True)
class BenchTest:
    n_prompt: int
    n_gen: int
    depth: int

    @property
    def name(self) -> str:
        parts = ([f"pp{self.n_prompt}"] if self.n_prompt else []) + (
            [f"tg{self.n_gen}"] if self.n_gen else []
        )
        return "+".join(parts) + (f" @ d{self.depth}" if self.depth else "")


def plan(task) -> list[BenchTest]:
    """llama-bench's order: every pp test, then tg, then pg, each at every depth."""
    tests: list[BenchTest] = []
    for d in task.depth:
        tests += [BenchTest(n, 0, d) for n in task.pp]
        tests += [BenchTest(0, n, d) for n in task.tg]
        for pg in task.pg:
            p, g = (int(x) for x in str(pg).split(","))
            tests.append(BenchTest(p, g, d))
    return tests


def backend_overrides(cfg) -> dict:
    """The context must hold the deepest test: depth + prompt + generated tokens (llama-bench)."""
    if cfg.backend.speculative != "none":
        raise ConfigError(
            "task=speed measures plain decoding; set backend.speculative=none "
            "(compare speculative decoding with a generation task, e.g. task=stress_quick)"
        )
    need = max(t.n_prompt + t.n_gen + t.depth for t in plan(cfg.task))
    # llama.cpp pads the context to 256 cells itself; asking for the padded size keeps n_batch
    # (which llama-cpp-python clamps to the n_ctx it was given) what llama-bench would use.
    return {"n_ctx": -(-need // 256) * 256}


class Bench:
    """The timed primitives, on the backend's own context (clear / decode / synchronize)."""

    def __init__(self, backend, seed: int):
        self.b = backend
        self.rng = np.random.default_rng(seed)
        self.bos = backend.bos_token if backend.add_bos else None
        self._state: tuple[int, Any] | None = None  # (depth, saved sequence state)

    def random_tokens(self, n: int, bos_first: bool) -> list[int]:
        tokens = self.rng.integers(0, self.b.n_vocab, size=n).tolist()
        if bos_first and self.bos is not None and n:
            tokens[0] = self.bos
        return tokens

    def prompt(self, tokens: list[int], n_past: int) -> None:
        """test_prompt: n_batch pieces (BOS first), synchronized once at the end."""
        self.b.decode(tokens, n_past, logits="last")
        self.b.synchronize()

    def gen(self, tokens: list[int], n_past: int) -> None:
        """test_gen: one token per decode, each with its logits, each synchronized."""
        decode, sync = self.b.decode, self.b.synchronize
        for i, token in enumerate(tokens):
            decode([token], n_past + i, logits="last")
            sync()

    def fill(self, depth: int) -> None:
        """Fill the KV cache with `depth` tokens; the state is saved once and restored after."""
        if self._state is not None and self._state[0] == depth:
            if self.b.restore_state(self._state[1]):
                return
        self.prompt(self.random_tokens(depth, bos_first=True), 0)
        self._state = (depth, self.b.save_state())

    def run(self, test: BenchTest, repetitions: int, warmup: bool) -> list[int]:
        b = self.b
        b.clear()
        if warmup:
            if test.n_prompt:
                self.prompt(self.random_tokens(test.n_prompt, bos_first=True), 0)
            if test.n_gen:
                self.gen(self.random_tokens(1, bos_first=True), test.n_prompt)
        samples: list[int] = []
        for _ in range(repetitions):
            b.clear()
            if test.depth:
                self.fill(test.depth)
            prompt = self.random_tokens(test.n_prompt, bos_first=True)
            gen = self.random_tokens(test.n_gen, bos_first=True)
            t0 = time.perf_counter_ns()
            if test.n_prompt:
                self.prompt(prompt, test.depth)
            if test.n_gen:
                self.gen(gen, test.depth + test.n_prompt)
            samples.append(time.perf_counter_ns() - t0)
        b.clear()
        return samples


def summarize_test(test: BenchTest, samples_ns: list[int]) -> SpeedTest:
    n = test.n_prompt + test.n_gen
    ts = [1e9 * n / s for s in samples_ns]
    return SpeedTest(
        name=test.name,
        n_prompt=test.n_prompt,
        n_gen=test.n_gen,
        depth=test.depth,
        repetitions=len(samples_ns),
        tokens_per_s_mean=mean(ts),
        tokens_per_s_sd=sample_sd(ts),
        samples_tokens_per_s=ts,
        samples_ns=samples_ns,
        avg_ns=mean(samples_ns),
        stdev_ns=sample_sd(samples_ns),
    )


def run(ctx) -> RunResult:
    task = ctx.cfg.task
    b = ctx.backend
    tests = plan(task)
    bench = Bench(b, task.seed)
    results: list[SpeedTest] = []
    status, message = "complete", None
    try:
        for i, test in enumerate(tests, 1):
            if ctx.cfg.progress:
                ctx.console.print(f"[dim]speed {i}/{len(tests)}: {test.name} × {task.repetitions}[/]")
            results.append(summarize_test(test, bench.run(test, task.repetitions, task.warmup)))
    except KeyboardInterrupt:
        status, message = "interrupted", f"interrupted after {len(results)} of {len(tests)} tests"
        _finish(ctx, results, status, message)
        raise
    result = _finish(ctx, results, status, message)
    if ctx.cfg.print_table:
        show(result, ctx.console)
    return result


def show(result: RunResult, console, out_dir=None) -> None:
    print_speed(result, console)


def _finish(ctx, tests: list[SpeedTest], status: str, message: str | None) -> RunResult:
    result = ctx.result(status, message, speed=speed_summary(ctx, tests) if tests else None)
    result.write(ctx.out_dir)
    return result


def speed_summary(ctx, tests: list[SpeedTest]) -> SpeedSummary:
    b = ctx.backend
    info = b.info()
    s = info.settings
    return SpeedSummary(
        tests=tests,
        **b.model_facts(),
        backend=b.ggml_backends() or ("GPU" if info.gpu_offload else "CPU"),
        n_threads=s["n_threads"],
        n_threads_batch=s["n_threads_batch"],
        n_batch=s["n_batch"],
        n_ubatch=s["n_ubatch"],
        n_ctx=s["n_ctx"],
        n_gpu_layers=s["n_gpu_layers"],
        flash_attn=s["flash_attn"],
        type_k=s["type_k"],
        type_v=s["type_v"],
        use_mmap=s["use_mmap"],
        warmup=ctx.cfg.task.warmup,
        seed=ctx.cfg.task.seed,
        build=f"{info.build}, ggml {b.ggml_build()}",
        cpu=ctx.hardware.cpu,
        gpu=info.device if info.gpu_offload else None,
        system_info=str(info.extra.get("system_info", "")),
    )


def speed_table(result: RunResult) -> str:
    """llama-bench's markdown table (model, size, params, backend, threads, test, t/s)."""
    s = result.speed
    if s is None:
        return ""
    gpu = s.backend != "CPU"
    cols = ["model", "size", "params", "backend"] + (["ngl"] if gpu else []) + ["threads"]
    cols += ["n_batch", "n_ubatch", "type_k", "type_v", "fa", "test", "t/s"]
    rows = []
    for t in s.tests:
        row = [
            s.model_desc,
            f"{s.model_size_bytes / 2**20:.2f} MiB",
            f"{s.model_n_params / 1e6:.2f} M",
            s.backend,
        ]
        row += [str(s.n_gpu_layers)] if gpu else []
        row += [str(s.n_threads), str(s.n_batch), str(s.n_ubatch), s.type_k, s.type_v]
        row += ["1" if s.flash_attn else "0", t.name]
        row.append(f"{t.tokens_per_s_mean:.2f} ± {t.tokens_per_s_sd:.2f}")
        rows.append(row)
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(cols)]
    right = {"size", "params", "ngl", "threads", "n_batch", "n_ubatch", "test", "t/s"}

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(
            c.rjust(w) if col in right else c.ljust(w) for c, w, col in zip(cells, widths, cols)
        ) + " |"

    sep = "| " + " | ".join(
        ("-" * (w - 1) + ":") if col in right else "-" * w for w, col in zip(widths, cols)
    ) + " |"
    return "\n".join([line(cols), sep] + [line(r) for r in rows])


def print_speed(result: RunResult, console) -> None:
    s = result.speed
    if s is None:
        return
    console.print(speed_table(result), markup=False, highlight=False, soft_wrap=True)
    where = s.cpu + (f" + {s.gpu}" if s.gpu else "")
    console.print(
        f"\n{s.build} · {where} · n_ctx {s.n_ctx} · {s.tests[0].repetitions} repetitions"
        f"{' after a warm-up' if s.warmup else ', no warm-up'} · mean ± sd",
        markup=False,
        highlight=False,
    )
    m = result.memory
    mem = [f"file {m.file_size_bytes / 2**20:.1f} MiB" if m.file_size_bytes else None]
    mem.append(f"{m.bits_per_weight:.2f} bpw" if m.bits_per_weight else None)
    mem.append(f"peak RSS {m.peak_rss_bytes / 2**20:.0f} MiB" if m.peak_rss_bytes else None)
    mem.append(f"KV cache {m.kv_cache_bytes / 2**20:.1f} MiB" if m.kv_cache_bytes else None)
    if m.gpu_memory_used_bytes is not None:
        mem.append(f"GPU memory {m.gpu_memory_used_bytes / 2**20:.0f} MiB")
    console.print("memory: " + ", ".join(x for x in mem if x), markup=False, highlight=False)
    console.print(f"results: {result.run_id} → results.json", markup=False, highlight=False)


class SpeedTaskConfig(TaskBase):
    """llama-bench's tests: pp<N> (prompt), tg<N> (generation), pp<N>+tg<M>, each at every depth."""

    kind: Literal["speed"] = "speed"
    pp: list[Annotated[int, Field(ge=1)]] = Field(default_factory=lambda: [512])
    tg: list[Annotated[int, Field(ge=1)]] = Field(default_factory=lambda: [128])
    pg: list[str] = Field(default_factory=list)  # "512,128" = pp512+tg128 in one test
    # Tokens already in the KV cache before the timed part starts (llama-bench's -d).
    depth: list[Annotated[int, Field(ge=0)]] = Field(default_factory=lambda: [0])
    repetitions: int = Field(5, ge=1)
    warmup: bool = True
    seed: int = Field(0, ge=0)  # random token ids: no prompt cache can short-circuit the work

    @model_validator(mode="after")
    def _tests_are_valid(self) -> "SpeedTaskConfig":
        for item in self.pg:
            parts = str(item).split(",")
            if len(parts) != 2 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
                raise ValueError(f"task.pg entries look like \"512,128\" (pp,tg), got {item!r}")
        if not (self.pp or self.tg or self.pg):
            raise ValueError("task=speed needs at least one test in task.pp, task.tg or task.pg")
        if not self.depth:
            raise ValueError("task.depth needs at least one value (0: an empty KV cache)")
        return self


def _register() -> None:
    from evalkit.backends.base import Capability
    from evalkit.kinds import TaskKind, register

    register(TaskKind(
        name="speed", config=SpeedTaskConfig, run=run, show=show,
        requires=frozenset({Capability.TOKEN_ACCESS, Capability.STATE, Capability.MODEL_FACTS}),
        backend_overrides=backend_overrides,
    ))


_register()
