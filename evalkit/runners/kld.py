"""task=kld: a candidate variant against a reference variant on the same tokens.

One model is loaded at a time. When the reference cache for (reference file, corpus, n_ctx,
chunks, K, M, KV-cache types, flash attention) is missing, the candidate that run.py opened is closed, the reference is loaded and
its pass written to the cache, then the candidate is loaded again and scored against the cache.
The tokens come from the cache (tokenized once, by the reference), so every candidate of a
ladder is scored on exactly the same token ids; a candidate with another vocabulary is refused.
task.corpus=responses:<task> scores the reference's own answers to a task's prompts instead
(evalkit/runners/kld_responses.py).
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from rich.markup import escape

from evalkit.config import CorpusTaskBase, ModelConfig, RunConfig
from evalkit.corpus import Corpus, load_corpus, responses_task
from evalkit.errors import TaskError
from evalkit.metrics.kld import ReferenceRows, candidate_rows, kld_stats, reference_rows
from evalkit.records import KldCacheInfo, KldSummary, RunResult
from evalkit.refcache import (
    CacheHeader,
    CacheKey,
    CacheWriter,
    RefCache,
    cache_path,
    open_cache,
    remove_stale_tmp,
    row_settings,
)
from evalkit.scoring import (
    ChunkPlan,
    Timer,
    chunk_corpus,
    chunk_pass,
    chunk_tokens,
    score_chunk,
    timing_summary,
)

# Exact mode keeps n_vocab float32 per scored token: for validation runs only.
EXACT_LIMIT_BYTES = 4 * 2**30


def backend_overrides(cfg) -> dict[str, int]:
    """A corpus is cut into task.n_ctx chunks; a prompt + answer needs the backend's own context."""
    from evalkit.scoring import backend_overrides as corpus_overrides

    overrides = corpus_overrides(cfg)
    return {} if responses_task(cfg.task.corpus) is not None else overrides


def preflight(run_cfg: RunConfig) -> None:
    """Before any model loads: a responses:<task> names a task file that loads."""
    name = responses_task(run_cfg.task.corpus)
    if name is not None:
        from evalkit.suite import load_suite

        load_suite(name)


def reference_config(model: ModelConfig, reference: str | None) -> ModelConfig:
    """task.reference: None -> the f16 variant of the same model config; a quant type -> that
    variant of the same config; anything else -> a conf/model name."""
    from evalkit.models import load_model_config
    from evalkit.models.ladder import QUANT_TYPES

    if reference is None or reference.strip().lower() in QUANT_TYPES:
        quant = (reference or "f16").strip().lower()
        return model.model_copy(update={"quant": quant})
    return load_model_config(reference.strip())


def run(ctx) -> RunResult:
    from evalkit.models import resolve_model

    cfg: RunConfig = ctx.cfg
    task = cfg.task
    cand = ctx.opened.resolved
    if cand is None:
        raise TaskError("task=kld needs a local GGUF model (backend=llama_cpp)")
    ref = resolve_model(reference_config(cfg.model, task.reference))
    _check_vocab(cand, ref)
    label = f"{ref.name} [{ref.variant}]: {ref.provenance}"
    responses = responses_task(task.corpus)
    if responses is not None:
        from evalkit.runners import kld_responses

        return kld_responses.run(ctx, ref, cand, responses, label)
    corpus = load_corpus(task.corpus)
    key = CacheKey(
        reference_sha256=ref.sha256,
        corpus_sha256=corpus.sha256,
        n_ctx=task.n_ctx,
        chunks=task.chunks,
        **row_settings(cfg),
    )
    path = cache_path(key)
    remove_stale_tmp(path.parent)
    cache, why = open_cache(path, key)
    built, build_s = False, None
    if why:
        ctx.console.print(f"[yellow]reference cache {path.name} rejected: {escape(why)}; rebuilding it[/]")
    if cache is None:
        cache = _build_reference(ctx, ref, cand, corpus, key, path, label)
        built, build_s = True, cache.header.build_s
    try:
        return _score(ctx, cache, ref, corpus, label, built, build_s, why)
    finally:
        cache.close()


def _check_vocab(cand, ref) -> None:
    a, b = cand.gguf, ref.gguf
    if a.n_vocab != b.n_vocab or (a.vocab_sha256 and b.vocab_sha256 and a.vocab_sha256 != b.vocab_sha256):
        raise TaskError(
            f"{cand.name} [{cand.variant}] and its reference {ref.name} [{ref.variant}] have different "
            f"vocabularies ({a.n_vocab} vs {b.n_vocab} tokens, tokenizer sha256 "
            f"{(a.vocab_sha256 or '?')[:12]} vs {(b.vocab_sha256 or '?')[:12]}): KL divergence needs "
            "the same tokenizer"
        )


# ---------------------------------------------------------------------------- reference pass


def _build_reference(ctx, ref, cand, corpus: Corpus, key: CacheKey, path: Path, label: str) -> RefCache:
    """Run the reference over the corpus and write its compact distributions to the cache."""
    with reference_backend(ctx, ref, cand) as backend:
        return _reference_pass(ctx, backend, corpus, key, path, label)


@contextmanager
def reference_backend(ctx, ref, cand):
    """The reference model, loaded with the run's settings (no drafter); one model in memory at a
    time: the candidate is closed meanwhile and reopened after. Its own file: the open backend."""
    from evalkit.backends import open_backend, open_model_file

    if ref.sha256 == cand.sha256:
        yield ctx.backend
        return
    overrides = backend_overrides(ctx.cfg)
    ctx.backend.close()
    bcfg = ctx.cfg.backend.model_copy(update={"speculative": "none"})
    backend = open_model_file(bcfg, str(ref.path), **overrides)
    try:
        yield backend
    finally:
        backend.close()
        ctx.opened.backend = open_backend(ctx.cfg, **overrides).backend


def _reference_pass(ctx, backend, corpus: Corpus, key: CacheKey, path: Path, label: str) -> RefCache:
    t0 = time.perf_counter()
    tokens, plan = chunk_corpus(backend, corpus, key.n_ctx, key.chunks)
    n_vocab = backend.n_vocab
    if key.exact and plan.n_scored * n_vocab * 4 > EXACT_LIMIT_BYTES:
        raise TaskError(
            f"task.exact=true would store {plan.n_scored * n_vocab * 4 / 2**30:.1f} GiB of reference "
            f"log-probs; it is for validation: lower task.chunks or task.n_ctx"
        )
    k = min(key.top_k, n_vocab)
    header = CacheHeader(
        key=key,
        reference=label,
        n_vocab=n_vocab,
        n_chunks=plan.n_chunks,
        first=plan.first,
        n_rows=plan.n_rows,
        top_k=k,
        tail_samples=key.tail_samples if k < n_vocab else 0,
        id_dtype="uint16" if n_vocab <= 65536 else "int32",
        add_bos=plan.add_bos,
        corpus_tokens=plan.corpus_tokens,
        created_at="",
    )
    writer = CacheWriter(path, header)
    timer = Timer()
    try:
        with chunk_pass(ctx, backend, "reference pass", plan.n_chunks) as (pool, advance):
            for i in range(plan.n_chunks):
                chunk = chunk_tokens(tokens, i, plan)
                parts: dict[int, ReferenceRows] = {}

                def on_rows(r0: int, block: np.ndarray, nxt: np.ndarray, i: int = i, parts=parts) -> None:
                    u = np.random.default_rng((i, r0)).random(len(nxt))  # reproducible tail draws
                    parts[r0] = reference_rows(block, nxt, k, header.tail_samples, u=u, full=key.exact)

                score_chunk(backend, chunk, plan, on_rows, timer, pool=pool)
                writer.add(chunk, ReferenceRows.concat([parts[r] for r in sorted(parts)]))
                advance()
        return writer.finish(time.perf_counter() - t0)
    except BaseException:
        writer.abort()
        raise


# ---------------------------------------------------------------------------- candidate pass


class CandidateScores:
    """Per-token results of a candidate scored against cached reference rows, for a corpus (one
    cluster per chunk) or a task's own answers (one cluster per prompt): filled block by block,
    summarised once, written once as per_token.npz."""

    def __init__(self, cluster: np.ndarray, exact: bool):
        n = len(cluster)
        self.cluster = cluster
        self.exact = exact
        self.kld = np.empty(n, dtype=np.float64)
        self.lq = np.empty(n, dtype=np.float64)  # candidate log-prob of the actual next token
        self.lp = np.empty(n, dtype=np.float64)  # reference log-prob of the same token
        self.same = np.empty(n, dtype=bool)

    def on_rows(self, base: int, ref: ReferenceRows):
        """The callback for one chunk or answer whose first scored token is token `base`."""

        def fill(r0: int, block: np.ndarray, nxt: np.ndarray) -> None:
            s = slice(r0, r0 + len(nxt))
            out = candidate_rows(block, nxt, ref.rows(s), exact=self.exact)
            g = slice(base + r0, base + r0 + len(nxt))
            self.kld[g] = out.kld
            self.lq[g] = out.lp_next
            self.lp[g] = ref.lp_next[s]
            self.same[g] = out.argmax == ref.top_ids[s, 0]

        return fill

    @property
    def dp(self) -> np.ndarray:
        return np.exp(self.lq) - np.exp(self.lp)

    def stats(self) -> dict:
        return kld_stats(-self.lq, -self.lp, self.kld, self.same, self.dp, self.cluster)

    def summary_fields(self, ref, label: str) -> dict:
        """The KldSummary fields both passes fill alike: the reference and the token statistics
        (the caller says what n_scored and n_chunks count)."""
        stats = {k: v for k, v in self.stats().items() if k not in ("n_scored", "n_chunks")}
        return dict(
            reference=label,
            reference_model=ref.name,
            reference_variant=ref.variant,
            reference_sha256=ref.sha256,
            reference_provenance=ref.provenance,
            **stats,
        )

    def save(self, out_dir: Path) -> None:
        """per_token.npz: what pair reports pair by token and cluster by `chunk`."""
        np.savez_compressed(
            out_dir / "per_token.npz",
            kld=self.kld.astype(np.float32),
            nll=(-self.lq).astype(np.float32),
            nll_ref=(-self.lp).astype(np.float32),
            same_top=self.same,
            dp=self.dp.astype(np.float32),
            chunk=self.cluster.astype(np.int32),
        )


def _score(ctx, cache: RefCache, ref, corpus: Corpus, label: str, built: bool, build_s, why) -> RunResult:
    task = ctx.cfg.task
    backend = ctx.backend
    h = cache.header
    if backend.n_vocab != h.n_vocab:
        raise TaskError(
            f"the candidate's vocabulary has {backend.n_vocab} tokens, the reference's {h.n_vocab}"
        )
    plan = ChunkPlan(n_ctx=h.key.n_ctx, n_chunks=h.n_chunks, add_bos=h.add_bos, bos=0,
                     corpus_tokens=h.corpus_tokens)
    n = plan.n_scored
    scores = CandidateScores(np.repeat(np.arange(plan.n_chunks), plan.n_rows), exact=task.exact)
    timer = Timer()
    try:
        with chunk_pass(ctx, backend, f"kld {ctx.opened.model.variant}", plan.n_chunks) as (pool, advance):
            for i in range(plan.n_chunks):
                rec = cache.chunk(i)
                on_rows = scores.on_rows(i * plan.n_rows, rec.rows)
                # The cache holds the tokens exactly as the reference decoded them (BOS included).
                score_chunk(backend, np.asarray(rec.tokens), plan, on_rows, timer, pool=pool)
                advance()
    except KeyboardInterrupt:
        ctx.result("interrupted", "interrupted; re-run the same command to score again").write(ctx.out_dir)
        raise
    size = cache.size_bytes
    summary = KldSummary(
        **scores.summary_fields(ref, label),
        n_scored=n,
        n_chunks=plan.n_chunks,
        corpus=corpus.name,
        corpus_description=corpus.description,
        corpus_sha256=corpus.sha256,
        corpus_tokens=h.corpus_tokens,
        n_ctx=plan.n_ctx,
        add_bos=plan.add_bos,
        top_k=h.top_k,
        tail_samples=h.tail_samples,
        exact=bool(task.exact),
        cache=KldCacheInfo(
            path=str(cache.path),
            bytes=size,
            bytes_per_token=size / n,
            built=built,
            build_s=build_s,
            rebuilt_because=why,
        ),
        timing=timing_summary(timer, n),
    )
    scores.save(ctx.out_dir)
    result = ctx.result("complete", kld=summary)
    result.write(ctx.out_dir)
    if ctx.cfg.print_table:
        show(result, ctx.console, ctx.out_dir)
    return result


def show(result: RunResult, console, out_dir: Path) -> None:
    """The KLD table, with the sibling runs against the same reference (a sweep's whole ladder)."""
    from evalkit.report.kld_tables import print_kld

    if result.kld is not None and result.kld.responses is not None:
        from evalkit.runners.kld_responses import show as show_responses

        show_responses(result, console, out_dir)
        return
    print_kld(result, console, out_dir)


def kind_preflight(run_cfg: RunConfig, seen: set[str]) -> None:
    """A named reference model config exists; a responses:<task> corpus names a task that loads."""
    from evalkit.models import load_model_config

    reference = run_cfg.task.reference
    if reference:
        from evalkit.models.ladder import QUANT_TYPES

        if reference.lower() not in QUANT_TYPES:
            load_model_config(reference)
    preflight(run_cfg)


class KldTaskConfig(CorpusTaskBase):
    kind: Literal["kld"] = "kld"
    # "f16" (or any ladder type) of the same model config, or a conf/model name; None: f16.
    reference: str | None = None
    # Reference log-probs kept per scored token, and tokens sampled from the rest of the
    # distribution (they estimate the tail's share of the KLD; docs/kld.md has the measurement).
    top_k: int = Field(64, ge=1, le=4096)
    tail_samples: int = Field(64, ge=0, le=4096)
    # Keep the reference's full float32 log-probs and compute exact KLD (validation; big files).
    exact: bool = False
    # corpus=responses:<task>: cap on each reference answer's tokens (None: the task's own cap).
    answer_max_tokens: int | None = Field(None, ge=1)


def _register() -> None:
    from evalkit.backends.base import Capability
    from evalkit.kinds import TaskKind, register

    register(TaskKind(
        name="kld", config=KldTaskConfig, run=run, show=show, requires=frozenset({Capability.TOKEN_ACCESS}),
        backend_overrides=backend_overrides, preflight=kind_preflight,
    ))


_register()
