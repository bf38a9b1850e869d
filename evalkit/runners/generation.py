"""Generation tasks (stress, constraints, a user's YAML): K seeded samples per prompt, checked.

Each finished sample is appended to samples.jsonl at once, so an interrupted run loses nothing
and re-running the same command completes only what is missing. A remote backend may run
samples concurrently; a sample that still fails after the backend's retries is recorded as
failed and the run goes on, unless failures come in a row (the server is gone), which stops it.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field

from evalkit.report.progress import progress_bar, progress_label

from evalkit.backends.base import Generation, GenerationRequest, SampleFailed
from evalkit.checks import run_check
from evalkit.config import SamplingConfig, TaskBase
from evalkit.metrics.generation import summarize
from evalkit.records import CheckOutcome, RunResult, SampleRecord, SampleStore, now_iso, stable_hash
from evalkit.report.tables import print_generation
from evalkit.seeds import derive_seed
from evalkit.suite import Prompt, Suite, load_suite

# Consecutive failed samples after which the backend is taken to be down.
MAX_CONSECUTIVE_FAILURES = 4


def sample_seed(base: int, prompt_id: str, index: int) -> int:
    """A distinct, reproducible seed per (prompt, sample index)."""
    return derive_seed(base, prompt_id, index)


@dataclass
class Job:
    prompt: Prompt
    index: int
    seed: int
    key: str


def run(ctx) -> RunResult:
    cfg = ctx.cfg
    task = cfg.task
    suite = load_suite(task.file, task.sampling)
    prompts = [p for p in suite.prompts if not task.prompts or p.id in task.prompts]
    backend = ctx.backend
    info = backend.info()
    model = ctx.opened.model
    identity = {
        "model": model.sha256 or f"{info.type}:{model.name}",
        "output_settings": info.output_settings,
        "task_sha256": suite.sha256,
        "sampling": suite.sampling.model_dump(),
        "system_prompt": task.system_prompt,
    }
    jobs = []
    for p in prompts:
        for i in range(task.samples):
            seed = sample_seed(suite.sampling.seed, p.id, i)
            key = stable_hash({**identity, "prompt": p.id, "index": i, "seed": seed}, 24)
            jobs.append(Job(p, i, seed, key))

    store = SampleStore(ctx.out_dir / "samples.jsonl")
    done = store.done_keys()
    todo = [j for j in jobs if j.key not in done]
    if store.dropped_lines:
        ctx.console.print(f"[yellow]dropped {store.dropped_lines} broken line(s) from samples.jsonl[/]")
    if len(todo) < len(jobs):
        ctx.console.print(f"resuming: {len(jobs) - len(todo)} of {len(jobs)} samples already done")

    status, message = "complete", None
    try:
        stopped = _run_jobs(ctx, suite, todo, store, info.type, task.system_prompt)
        if stopped:
            status, message = "failed", stopped
    except KeyboardInterrupt:
        status, message = "interrupted", "interrupted; re-run the same command to resume"
        _write(ctx, suite, jobs, store, status, message)
        store.close()
        raise
    result = _write(ctx, suite, jobs, store, status, message)
    store.close()
    if cfg.print_table:
        print_generation(result, ctx.console)
    if status == "complete" and result.generation and result.generation.n_failed:
        result.status = "failed"
        result.message = f"{result.generation.n_failed} of {len(jobs)} samples failed"
        result.write(ctx.out_dir)
    return result


def _write(ctx, suite: Suite, jobs: list[Job], store: SampleStore, status: str, message: str | None):
    wanted = {j.key for j in jobs}
    records = [r for r in store.latest() if r.key in wanted]
    summary = summarize(records, len({j.prompt.id for j in jobs}), ctx.backend.concurrency)
    result = ctx.result(
        status,
        message,
        generation=summary,
        task_file=str(suite.path),
        task_sha256=suite.sha256,
    )
    result.write(ctx.out_dir)
    return result


def _run_jobs(ctx, suite: Suite, todo: list[Job], store: SampleStore, backend_type: str, system_prompt):
    """Run jobs (concurrently when the backend allows); returns a reason if it had to stop."""
    backend = ctx.backend
    workers = max(1, int(backend.concurrency))
    streak = 0
    lock = threading.Lock()
    stop_reason: str | None = None

    def one(job: Job) -> SampleRecord:
        request = GenerationRequest(
            messages=job.prompt.messages(system_prompt), sampling=suite.sampling, seed=job.seed
        )
        try:
            gen = backend.generate(request)
            return _record(ctx, suite, job, gen, backend_type, None)
        except SampleFailed as exc:
            return _record(ctx, suite, job, None, backend_type, str(exc))

    def one_and_store(job: Job) -> SampleRecord:
        # Workers write their own records: a finished sample is on disk even when Ctrl-C lands
        # before the main thread has looked at it.
        rec = one(job)
        store.append(rec)
        return rec

    with _progress(ctx, len(todo)) as (progress, bar):
        if workers == 1:
            for job in todo:
                rec = one(job)
                store.append(rec)
                progress.advance(bar)
                streak = streak + 1 if rec.error else 0
                if streak >= MAX_CONSECUTIVE_FAILURES:
                    return f"stopped after {streak} failed samples in a row; last: {rec.error}"
            return None
        with _pool(backend, workers) as pool:
            pending = set()
            queue = iter(todo)
            for job in queue:
                pending.add(pool.submit(one_and_store, job))
                if len(pending) >= workers:
                    break
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    rec = fut.result()
                    progress.advance(bar)
                    with lock:
                        streak = streak + 1 if rec.error else 0
                        if streak >= max(MAX_CONSECUTIVE_FAILURES, 2 * workers) and stop_reason is None:
                            stop_reason = f"stopped after {streak} failed samples in a row; last: {rec.error}"
                if stop_reason is None:
                    for job in queue:
                        pending.add(pool.submit(one_and_store, job))
                        if len(pending) >= workers:
                            break
    return stop_reason


def _record(ctx, suite: Suite, job: Job, gen: Generation | None, backend_type: str, error: str | None) -> SampleRecord:
    model = ctx.opened.model
    sampling: SamplingConfig = suite.sampling
    base = dict(
        key=job.key,
        run_id=ctx.run_id,
        created_at=now_iso(),
        task=ctx.cfg.task.name,
        model=model.name,
        variant=model.variant,
        model_sha256=model.sha256,
        backend=backend_type,
        prompt_id=job.prompt.id,
        category=job.prompt.category,
        sample_index=job.index,
        seed=job.seed,
        sampling=sampling.model_dump(),
        prompt=job.prompt.prompt,
    )
    if gen is None:
        return SampleRecord(**base, output="", finish_reason="error", chars=0, error=error)
    outcomes = []
    for c in job.prompt.checks:
        strict, loose = run_check(c.check, c.params, gen.text)
        outcomes.append(
            CheckOutcome(
                check=c.name,
                params=c.params.model_dump(),
                passed=strict.passed,
                value=strict.value,
                reason=strict.reason,
                passed_loose=loose,
                spans=strict.spans,
            )
        )
    chars = len(gen.text)
    gen_tps = (
        (gen.completion_tokens - 1) / gen.generation_s
        if gen.generation_s and gen.completion_tokens > 1
        else None
    )
    evaluated = gen.prompt_tokens - gen.cached_prompt_tokens if gen.prompt_tokens is not None else None
    draft = gen.draft
    return SampleRecord(
        **base,
        output=gen.text,
        finish_reason=gen.finish_reason,
        prompt_tokens=gen.prompt_tokens,
        completion_tokens=gen.completion_tokens,
        cached_prompt_tokens=gen.cached_prompt_tokens,
        chars=chars,
        ttft_s=gen.ttft_s,
        prompt_eval_s=gen.prompt_eval_s,
        generation_s=gen.generation_s,
        total_s=gen.total_s,
        prompt_tokens_per_s=(evaluated / gen.prompt_eval_s) if gen.prompt_eval_s and evaluated is not None else None,
        gen_tokens_per_s=gen_tps,
        chars_per_s=chars / gen.total_s if gen.total_s else None,
        drafted_tokens=draft.drafted_tokens if draft else None,
        accepted_tokens=draft.accepted_tokens if draft else None,
        acceptance_rate=draft.acceptance_rate if draft else None,
        server_model=gen.server_model,
        server_timings=gen.server_timings,
        token_counts=gen.extra.get("token_counts"),
        attempts=gen.extra.get("attempts"),
        checks=outcomes,
        passed_strict=all(o.passed for o in outcomes) if outcomes else None,
        passed_loose=all(o.passed_loose for o in outcomes) if outcomes else None,
    )


@contextmanager
def _pool(backend, workers: int):
    """A thread pool that, on Ctrl-C/SIGTERM, first tells the backend to drop in-flight requests.

    Without it, leaving the pool would wait for every running request to finish generating.
    """
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        yield pool
    except BaseException:
        backend.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


class _progress:
    """A progress bar on stderr while generating (silent when disabled)."""

    def __init__(self, ctx, total: int):
        self.enabled = ctx.cfg.progress and total > 0
        self.progress = progress_bar(enabled=self.enabled)
        self.total = total
        self.label = progress_label(ctx)

    def __enter__(self):
        self.progress.start()
        bar = self.progress.add_task(self.label, total=self.total)
        return self.progress, bar

    def __exit__(self, *exc):
        self.progress.stop()
        return False


def preflight(run_cfg, seen: set[str]) -> None:
    """The task file loads (unknown checks fail here), once per file in a command."""
    task = run_cfg.task
    if task.file not in seen:
        load_suite(task.file, task.sampling)
        seen.add(task.file)


def finish(cfg, out_dir, result: RunResult, console) -> RunResult:
    """Pair speculative and plain runs of the same sweep (evalkit.speculative)."""
    from evalkit.speculative import attach

    return attach(out_dir, result, console if cfg.print_table else None)


class GenerationTaskConfig(TaskBase):
    """Prompts with checks (stress, constraints, or a user's own YAML file)."""

    kind: Literal["generation"] = "generation"
    file: str  # a name under tasks/ ("stress") or a path to a YAML file
    samples: int = Field(1, ge=1)
    # Overrides on top of the task file's own sampling block (null: keep the file's value). Every
    # key is present, so `task.sampling.max_tokens=16` needs no `+`.
    sampling: dict[str, Any] = Field(default_factory=lambda: dict.fromkeys(SamplingConfig.model_fields))
    prompts: list[str] | None = None  # restrict to these prompt ids
    system_prompt: str | None = None


def _register() -> None:
    from evalkit.kinds import TaskKind, register

    register(TaskKind(name="generation", config=GenerationTaskConfig, run=run, preflight=preflight, finish=finish))


_register()
