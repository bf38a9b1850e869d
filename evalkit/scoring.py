"""llama-perplexity's scoring loop on evalkit's backend: chunks, BOS, second half scored.

As in tools/perplexity/perplexity.cpp: the corpus is tokenized once (with BOS when the model adds
one), cut into floor(n_tokens / n_ctx) chunks of n_ctx tokens; each chunk is decoded on an empty
KV cache with its first token replaced by BOS (when the model adds one), and only positions
first = n_ctx/2 .. n_ctx-2 are scored, each predicting the next token. Logits are requested only
for those positions, and handed out in row blocks straight from llama.cpp's output buffer, so
nothing of size n_ctx x n_vocab is ever copied.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from evalkit.errors import TaskError

ROW_BLOCK = 32  # logit rows processed at once: 32 x 262,144 float32 = 32 MiB of temporaries


@dataclass(frozen=True)
class ChunkPlan:
    n_ctx: int
    n_chunks: int
    add_bos: bool
    bos: int
    corpus_tokens: int

    @property
    def first(self) -> int:
        return self.n_ctx // 2

    @property
    def n_rows(self) -> int:
        """Scored positions per chunk (llama-perplexity: n_ctx - 1 - first)."""
        return self.n_ctx - 1 - self.first

    @property
    def n_scored(self) -> int:
        return self.n_rows * self.n_chunks


def plan_chunks(
    n_tokens: int, n_ctx: int, chunks: int | None, add_bos: bool, bos: int, corpus: str
) -> ChunkPlan:
    if n_tokens < 2 * n_ctx:
        raise TaskError(
            f"corpus '{corpus}' is {n_tokens} tokens long; n_ctx={n_ctx} needs at least "
            f"{2 * n_ctx} (2 x n_ctx): use a longer text or a smaller task.n_ctx"
        )
    n_max = n_tokens // n_ctx
    n = min(chunks, n_max) if chunks else n_max
    return ChunkPlan(n_ctx=n_ctx, n_chunks=n, add_bos=add_bos, bos=bos, corpus_tokens=n_tokens)


def chunk_tokens(tokens: np.ndarray, i: int, plan: ChunkPlan) -> np.ndarray:
    """Chunk i as it is decoded: its first token replaced by BOS when the model adds one."""
    chunk = np.array(tokens[i * plan.n_ctx : (i + 1) * plan.n_ctx], dtype=np.int32)
    if plan.add_bos:
        chunk[0] = plan.bos
    return chunk


@dataclass
class Timer:
    decode_s: float = 0.0
    process_s: float = 0.0
    chunks: int = 0
    per_chunk_s: list[float] = field(default_factory=list)

    @property
    def total_s(self) -> float:
        return self.decode_s + self.process_s


def score_sequence(
    backend,
    seq: np.ndarray,
    first: int,
    on_rows: Callable[[int, np.ndarray, np.ndarray], None],
    timer: Timer,
    row_block: int = ROW_BLOCK,
    pool: ThreadPoolExecutor | None = None,
) -> int:
    """Decode seq on an empty cache and call on_rows(row0, logits_block, next_tokens) for the
    positions first .. len(seq) - 2 (row r predicts token first + r + 1); returns the row count.

    Logits are asked for those rows only. `logits_block` is a view of llama.cpp's output buffer,
    valid only during the call. With a pool, blocks are processed in parallel while llama.cpp's
    own threads sit idle (numpy releases the GIL), like llama-perplexity's worker threads;
    on_rows must then write disjoint slices.
    """
    t0 = time.perf_counter()
    backend.clear()
    n = len(seq)
    row = 0
    n_batch = backend.n_batch
    for start in range(0, n, n_batch):
        piece = seq[start : start + n_batch]
        end = start + len(piece)
        ta = time.perf_counter()
        if end <= first:  # nothing scored in this piece: no logits at all
            backend.decode(piece.tolist(), start, logits="none")
            backend.synchronize()
            timer.decode_s += time.perf_counter() - ta
            continue
        lo = max(first - start, 0)
        backend.decode(piece.tolist(), start, logits="all", outputs_from=lo)
        backend.synchronize()
        tb = time.perf_counter()
        timer.decode_s += tb - ta
        n_out = len(piece) - lo
        usable = n_out - 1 if end == n else n_out  # the last position predicts nothing
        logits = backend.logits(n_out)
        jobs = []
        for b in range(0, usable, row_block):
            e = min(b + row_block, usable)
            pos = start + lo + b  # position of the first row of this block
            jobs.append((row + b, logits[b:e], seq[pos + 1 : pos + 1 + (e - b)]))
        if pool is None:
            for job in jobs:
                on_rows(*job)
        else:
            for done in [pool.submit(on_rows, *job) for job in jobs]:
                done.result()
        row += usable
        timer.process_s += time.perf_counter() - tb
    timer.chunks += 1
    timer.per_chunk_s.append(time.perf_counter() - t0)
    assert row == n - first - 1, (row, n, first)
    return row


def backend_overrides(cfg) -> dict[str, int]:
    """The context a corpus task needs: n_ctx = task.n_ctx, one chunk per batch by default."""
    task = cfg.task
    n_batch = min(task.n_batch or task.n_ctx, task.n_ctx)
    return {"n_ctx": task.n_ctx, "n_batch": n_batch}


def score_chunk(backend, chunk: np.ndarray, plan: ChunkPlan, on_rows, timer: Timer, **options: Any) -> None:
    """One corpus chunk (llama-perplexity's protocol): its second half, plan.n_rows rows, scored.
    A chunk of another length (a damaged cache entry) stops here instead of misaligning rows."""
    rows = score_sequence(backend, chunk, plan.first, on_rows, timer, **options)
    assert rows == plan.n_rows, (rows, plan.n_rows)


def tokenize_corpus(backend, text: str) -> np.ndarray:
    """The whole text at once, BOS first when the model adds one (llama-perplexity's tokenize)."""
    return np.asarray(backend.tokenize(text, add_bos=backend.add_bos), dtype=np.int32)


def chunk_corpus(backend, corpus, n_ctx: int, chunks: int | None) -> tuple[np.ndarray, ChunkPlan]:
    """(tokens, plan): the corpus tokenized once and cut into chunks, as llama-perplexity does."""
    tokens = tokenize_corpus(backend, corpus.text)
    return tokens, plan_chunks(len(tokens), n_ctx, chunks, backend.add_bos, backend.bos_token, corpus.name)


@contextmanager
def chunk_pass(ctx, backend, label: str, n_chunks: int) -> Iterator[tuple[ThreadPoolExecutor | None, Callable[[], None]]]:
    """One pass over the chunks: threads for the row maths and a transient progress bar.

    Yields (pool, advance). The pool has as many threads as llama.cpp decodes with (None: one).
    """
    from evalkit.report.progress import progress_bar

    n = int(backend.n_threads_batch or 1)
    pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="evalkit-rows") if n > 1 else None
    bar = progress_bar(enabled=ctx.cfg.progress, console=ctx.console, transient=True, bold=False)
    task = bar.add_task(label, total=n_chunks)
    try:
        with bar:
            yield pool, lambda: bar.advance(task)
    finally:
        if pool is not None:
            pool.shutdown()


def timing_summary(timer: Timer, n_scored: int):
    from evalkit.records import ScoringTiming

    total = timer.total_s
    return ScoringTiming(
        scoring_s=round(total, 4),
        decode_s=round(timer.decode_s, 4),
        process_s=round(timer.process_s, 4),
        tokens_per_s=n_scored / total if total > 0 else 0.0,
        chunk_s_mean=float(np.mean(timer.per_chunk_s)) if timer.per_chunk_s else None,
    )
