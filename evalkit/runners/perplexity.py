"""task=perplexity: llama-perplexity's PPL of one variant on a corpus (no reference needed)."""

from __future__ import annotations

from typing import Literal

import numpy as np

from evalkit.config import CorpusTaskBase
from evalkit.corpus import load_corpus
from evalkit.metrics.kld import candidate_rows, perplexity_stats
from evalkit.records import PerplexitySummary, RunResult
from evalkit.scoring import (
    Timer,
    backend_overrides,
    chunk_corpus,
    chunk_pass,
    chunk_tokens,
    score_chunk,
    timing_summary,
)


def run(ctx) -> RunResult:
    task = ctx.cfg.task
    backend = ctx.backend
    corpus = load_corpus(task.corpus)
    tokens, plan = chunk_corpus(backend, corpus, task.n_ctx, task.chunks)
    nll = np.empty(plan.n_scored, dtype=np.float64)
    chunk_of = np.repeat(np.arange(plan.n_chunks), plan.n_rows)
    timer = Timer()
    try:
        with chunk_pass(ctx, backend, f"perplexity {ctx.opened.model.variant}", plan.n_chunks) as (pool, advance):
            for i in range(plan.n_chunks):
                base = i * plan.n_rows

                def on_rows(r0: int, block: np.ndarray, nxt: np.ndarray, base: int = base) -> None:
                    out = candidate_rows(block, nxt)
                    nll[base + r0 : base + r0 + len(nxt)] = -out.lp_next

                score_chunk(backend, chunk_tokens(tokens, i, plan), plan, on_rows, timer, pool=pool)
                advance()
    except KeyboardInterrupt:
        ctx.result("interrupted", "interrupted; re-run the same command to score again").write(ctx.out_dir)
        raise
    stats = perplexity_stats(nll, chunk_of)
    summary = PerplexitySummary(
        ppl=stats["ppl"],
        ppl_se=stats["ppl_se"],
        ppl_se_clustered=stats["ppl_se_clustered"],
        nll_mean=stats["nll_mean"],
        nll_se=stats["nll_se"],
        n_scored=plan.n_scored,
        n_chunks=plan.n_chunks,
        corpus=corpus.name,
        corpus_description=corpus.description,
        corpus_sha256=corpus.sha256,
        corpus_tokens=plan.corpus_tokens,
        n_ctx=plan.n_ctx,
        add_bos=plan.add_bos,
        timing=timing_summary(timer, plan.n_scored),
    )
    np.savez_compressed(ctx.out_dir / "per_token.npz", nll=nll.astype(np.float32), chunk=chunk_of.astype(np.int32))
    result = ctx.result("complete", perplexity=summary)
    result.write(ctx.out_dir)
    if ctx.cfg.print_table:
        show(result, ctx.console, ctx.out_dir)
    return result


def show(result: RunResult, console, out_dir=None) -> None:
    from evalkit.report.kld_tables import print_perplexity

    print_perplexity(result, console)


class PerplexityTaskConfig(CorpusTaskBase):
    kind: Literal["perplexity"] = "perplexity"


def _register() -> None:
    from evalkit.backends.base import Capability
    from evalkit.kinds import TaskKind, register

    register(TaskKind(
        name="perplexity", config=PerplexityTaskConfig, run=run, show=show,
        requires=frozenset({Capability.TOKEN_ACCESS}), backend_overrides=backend_overrides,
    ))


_register()
