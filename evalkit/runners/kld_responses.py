"""task=kld task.corpus=responses:<task>: KL divergence on the text the user cares about.

The reference variant answers each prompt of a generation task once (the model's chat template
applied, one recorded seed per prompt, the task's sampling, an optional cap); the token ids of
prompt + answer are cached with the reference's distributions at every answer position, keyed
by the reference file, the task file, the sampling, the seeds and the cap. Every candidate then
reads those exact token ids and is scored on the answer tokens only (the rows that predict the
reference's answer tokens, its end-of-generation token included; the prompt is context, never
scored). Figures come overall, per prompt and per category. Unlike temperature-1 pass rates,
nothing here is sampled twice: the same candidate file gives the same numbers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich import box
from rich.markup import escape
from rich.table import Table

from evalkit.errors import TaskError
from evalkit.metrics.kld import ReferenceRows, clustered_se, percentile, reference_rows
from evalkit.records import (
    KldCacheInfo,
    KldGroupStats,
    KldPromptStats,
    KldResponses,
    KldSummary,
    RunResult,
    stable_hash,
)
from evalkit.refcache import ResponsesCache, ResponsesKey, read_responses, responses_path, row_settings, write_responses
from evalkit.runners.kld import CandidateScores, reference_backend
from evalkit.scoring import Timer, chunk_pass, score_sequence, timing_summary

EXACT_LIMIT_BYTES = 4 * 2**30


@dataclass
class Answer:
    """One reference answer: what the cache records besides the distributions."""

    id: str
    category: str
    seed: int
    prompt_tokens: int
    answer_tokens: int
    finish: str
    text: str


def load_task(ctx, task_name: str):
    from evalkit.suite import load_suite

    return load_suite(task_name)


def run(ctx, ref, cand, task_name: str, label: str) -> RunResult:
    from evalkit.runners.generation import sample_seed

    cfg, task = ctx.cfg, ctx.cfg.task
    suite = load_task(ctx, task_name)
    sampling = suite.sampling
    if task.answer_max_tokens is not None:
        sampling = sampling.model_copy(update={"max_tokens": task.answer_max_tokens})
    seeds = [sample_seed(sampling.seed, p.id, 0) for p in suite.prompts]
    key = ResponsesKey(
        reference_sha256=ref.sha256,
        task_sha256=suite.sha256,
        prompts=[p.id for p in suite.prompts],
        seeds=seeds,
        sampling=sampling.model_dump(mode="json"),
        chat_template=bool(cfg.backend.chat_template),
        system_prompt=cfg.task.system_prompt if hasattr(cfg.task, "system_prompt") else None,
        **row_settings(cfg),
    )
    path = responses_path(key)
    cache, why = read_responses(path, key)
    built, build_s = False, None
    if why:
        ctx.console.print(f"[yellow]reference answers {path.name} rejected: {escape(why)}; regenerating[/]")
    if cache is None:
        cache = _build_reference(ctx, ref, cand, suite, sampling, seeds, key, path, label)
        built, build_s = True, cache.header["build_s"]
    return _score(ctx, cache, ref, suite, task_name, sampling, label, built, build_s, why)


# ---------------------------------------------------------------------------- reference side


def _build_reference(ctx, ref, cand, suite, sampling, seeds, key, path: Path, label: str) -> ResponsesCache:
    """Load the reference (unless it is the candidate's own file), answer, score, cache."""

    with reference_backend(ctx, ref, cand) as backend:
        t0 = time.perf_counter()
        answers, seqs, firsts = [], [], []
        for p, seed in zip(suite.prompts, seeds):
            prompt = backend.prompt_tokens(p.messages(getattr(ctx.cfg.task, "system_prompt", None)))
            ids, finish = generate_ids(backend, prompt, sampling, seed)
            answers.append(Answer(p.id, p.category, seed, len(prompt), len(ids), finish,
                                  backend.detokenize([t for t in ids if not backend.is_eog(t)])))
            seqs.append(np.asarray(prompt + ids, dtype=np.int32))
            firsts.append(len(prompt) - 1)
        gen_s = time.perf_counter() - t0
        n_vocab = backend.n_vocab
        n_rows = sum(len(s) - f - 1 for s, f in zip(seqs, firsts))
        if key.exact and n_rows * n_vocab * 4 > EXACT_LIMIT_BYTES:
            raise TaskError(f"task.exact=true would keep {n_rows * n_vocab * 4 / 2**30:.1f} GiB of reference log-probs")
        k = min(key.top_k, n_vocab)
        tail = key.tail_samples if k < n_vocab else 0
        rows: list[ReferenceRows] = []
        timer = Timer()
        with chunk_pass(ctx, backend, "reference answers", len(seqs)) as (pool, advance):
            for i, (seq, first) in enumerate(zip(seqs, firsts)):
                parts: dict[int, ReferenceRows] = {}

                def on_rows(r0: int, block: np.ndarray, nxt: np.ndarray, i: int = i, parts=parts) -> None:
                    u = np.random.default_rng((i, r0)).random(len(nxt))  # reproducible tail draws
                    parts[r0] = reference_rows(block, nxt, k, tail, u=u, full=key.exact)

                score_sequence(backend, seq, first, on_rows, timer, pool=pool)
                rows.append(ReferenceRows.concat([parts[r] for r in sorted(parts)]))
                advance()
        header = {
            "key": key.model_dump(mode="json"),
            "reference": label,
            "n_vocab": n_vocab,
            "top_k": k,
            "tail_samples": tail,
            "add_bos": bool(backend.add_bos),
            "answers": [a.__dict__ for a in answers],
            "generation_s": gen_s,
            "build_s": time.perf_counter() - t0,
        }
        return write_responses(path, header, seqs, firsts, rows)


def generate_ids(backend, prompt: list[int], s, seed: int) -> tuple[list[int], str]:
    """Sample an answer as token ids (the end-of-generation token kept), with the run's sampler.

    llama.cpp's sampler with a fixed seed, as evalkit's generation runs use it, but token ids
    are what KLD needs: detokenizing and tokenizing again need not give the same ids back.
    """
    if len(prompt) >= backend.n_ctx:
        raise TaskError(f"a prompt has {len(prompt)} tokens but backend.n_ctx is {backend.n_ctx}; raise it")
    sampler = backend.sampler(s, seed)
    limit = backend.n_ctx - len(prompt) - 1
    if s.max_tokens is not None:
        limit = min(limit, s.max_tokens)
    backend.clear()
    backend.decode(prompt, 0, logits="last")
    n_past = len(prompt)
    ids: list[int] = []
    while True:
        token = backend.sample_last(sampler)
        ids.append(token)
        if backend.is_eog(token):
            return ids, "stop"
        if len(ids) >= limit:
            return ids, "length"
        backend.decode([token], n_past, logits="last")
        n_past += 1


# ---------------------------------------------------------------------------- candidate side


def _score(ctx, cache: ResponsesCache, ref, suite, task_name: str, sampling, label: str, built, build_s, why) -> RunResult:
    task = ctx.cfg.task
    backend = ctx.backend
    h = cache.header
    if backend.n_vocab != h["n_vocab"]:
        raise TaskError(f"the candidate's vocabulary has {backend.n_vocab} tokens, the reference's {h['n_vocab']}")
    n_seq = len(cache.seqs)
    sizes = [len(s) - f - 1 for s, f in zip(cache.seqs, cache.firsts)]
    n = sum(sizes)
    prompt_of = np.repeat(np.arange(n_seq), sizes)
    scores = CandidateScores(prompt_of, exact=task.exact)
    bases = np.concatenate([[0], np.cumsum(sizes)])
    timer = Timer()
    try:
        with chunk_pass(ctx, backend, f"kld {ctx.opened.model.variant}", n_seq) as (pool, advance):
            for i, (seq, first) in enumerate(zip(cache.seqs, cache.firsts)):
                on_rows = scores.on_rows(int(bases[i]), cache.rows(i))
                score_sequence(backend, np.asarray(seq), first, on_rows, timer, pool=pool)
                advance()
    except KeyboardInterrupt:
        ctx.result("interrupted", "interrupted; re-run the same command to score again").write(ctx.out_dir)
        raise
    kld, same, lp, lq = scores.kld, scores.same, scores.lp, scores.lq
    answers = h["answers"]
    per_prompt = [_prompt_stats(a, kld[prompt_of == i], same[prompt_of == i], lp[prompt_of == i] - lq[prompt_of == i])
                  for i, a in enumerate(answers)]
    categories = list(dict.fromkeys(a["category"] for a in answers))
    per_cat = [_group_stats(c, [i for i, a in enumerate(answers) if a["category"] == c], kld, same, lp - lq, prompt_of)
               for c in categories]
    responses = KldResponses(
        task=task_name,
        task_sha256=suite.sha256,
        sampling=sampling.model_dump(mode="json"),
        answer_max_tokens=task.answer_max_tokens,
        chat_template=h["key"]["chat_template"],
        system_prompt=h["key"].get("system_prompt"),
        prompts=per_prompt,
        categories=per_cat,
    )
    size = cache.size_bytes
    summary = KldSummary(
        **scores.summary_fields(ref, label),
        n_scored=n,
        n_chunks=n_seq,
        corpus=f"responses:{task_name}",
        corpus_description=(
            f"{h['reference']}'s answers to the {n_seq} prompts of {suite.path.name} "
            f"(seeds recorded; answer tokens scored)"
        ),
        corpus_sha256=stable_hash(h["key"], 64),
        corpus_tokens=int(sum(len(s) for s in cache.seqs)),
        n_ctx=int(backend.n_ctx),
        add_bos=bool(h["add_bos"]),
        top_k=h["top_k"],
        tail_samples=h["tail_samples"],
        exact=bool(task.exact),
        cache=KldCacheInfo(path=str(cache.path), bytes=size, bytes_per_token=size / max(n, 1), built=built,
                           build_s=build_s, rebuilt_because=why),
        timing=timing_summary(timer, n),
        responses=responses,
    )
    scores.save(ctx.out_dir)  # `chunk` = the prompt each token belongs to (clusters)
    result = ctx.result("complete", kld=summary)
    result.write(ctx.out_dir)
    if ctx.cfg.print_table:
        show(result, ctx.console, ctx.out_dir)
    return result


def _prompt_stats(a: dict[str, Any], kld: np.ndarray, same: np.ndarray, diff: np.ndarray) -> KldPromptStats:
    return KldPromptStats(
        id=a["id"], category=a["category"], seed=a["seed"], prompt_tokens=a["prompt_tokens"],
        answer_tokens=a["answer_tokens"], finish=a["finish"],
        kld_mean=float(kld.mean()), kld_p99=percentile(kld, 0.99), kld_max=float(kld.max()),
        same_top_pct=100.0 * float(same.mean()), ln_ppl_ratio_mean=float(diff.mean()),
    )


def _group_stats(name: str, members: list[int], kld, same, diff, prompt_of) -> KldGroupStats:
    mask = np.isin(prompt_of, members)
    return KldGroupStats(
        category=name, n_prompts=len(members), n_scored=int(mask.sum()),
        kld_mean=float(kld[mask].mean()), kld_se_clustered=clustered_se(kld[mask], prompt_of[mask]),
        kld_p99=percentile(kld[mask], 0.99), same_top_pct=100.0 * float(same[mask].mean()),
        ln_ppl_ratio_mean=float(diff[mask].mean()),
    )


def show(result: RunResult, console, out_dir: Path) -> None:
    """The ladder table (kld_tables), then mean KLD per category for every variant beside it."""
    from evalkit.report.kld_tables import ladder, print_kld

    print_kld(result, console, out_dir)
    k = result.kld
    if k is None or k.responses is None:
        return
    rows = [r for r in ladder(result, out_dir) if r.kld and r.kld.responses and r.kld.responses.categories]
    table = Table(title=f"mean KLD per category on {k.corpus} (answer tokens; vs {k.reference_variant})",
                  title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("category")
    table.add_column("prompts", justify="right")
    table.add_column("tokens", justify="right")
    for r in rows:
        mark = " ←" if r.run_id == result.run_id else ""
        table.add_column(escape(r.model.variant) + mark, justify="right")
    by_run = [{c.category: c for c in r.kld.responses.categories} for r in rows]  # type: ignore[union-attr]
    for c in k.responses.categories:
        cells = [by.get(c.category) for by in by_run]
        table.add_row(escape(c.category), str(c.n_prompts), str(c.n_scored),
                      *[f"{x.kld_mean:.4f}" if x else "-" for x in cells])
    table.add_row("all", str(len(k.responses.prompts)), str(k.n_scored),
                  *[f"{r.kld.kld_mean:.4f}" for r in rows], style="bold")
    console.print(table)
    r = k.responses
    console.print(f"scored: {r.scored}; one answer per prompt, seeds recorded; "
                  f"cap {r.answer_max_tokens or r.sampling.get('max_tokens') or 'none'} tokens")
