"""Summaries of generation records: pass rates, volumes, and timing with spread."""

from __future__ import annotations

from collections import defaultdict

from evalkit.records import CheckRate, GenerationSummary, PromptSummary, SampleRecord, Stat


def _rate(flags: list[bool]) -> float | None:
    return sum(flags) / len(flags) if flags else None


def summarize(records: list[SampleRecord], n_prompts: int, concurrency: int = 1) -> GenerationSummary:
    ok = [r for r in records if r.error is None]
    failed = [r for r in records if r.error is not None]
    checked = [r for r in ok if r.passed_strict is not None]

    per_check: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
    for r in ok:
        for c in r.checks:
            per_check[c.check].append((c.passed, c.passed_loose))

    by_prompt: dict[str, list[SampleRecord]] = defaultdict(list)
    for r in records:
        by_prompt[r.prompt_id].append(r)
    per_prompt = {}
    for pid, rs in by_prompt.items():
        good = [r for r in rs if r.error is None]
        judged = [r for r in good if r.passed_strict is not None]
        per_prompt[pid] = PromptSummary(
            category=rs[0].category,
            n=len(good),
            n_failed=len(rs) - len(good),
            pass_rate_strict=_rate([bool(r.passed_strict) for r in judged]),
            pass_rate_loose=_rate([bool(r.passed_loose) for r in judged]),
            mean_chars=Stat.of([r.chars for r in good]).mean,
            mean_completion_tokens=Stat.of([r.completion_tokens for r in good]).mean,
            gen_tokens_per_s=Stat.of([r.gen_tokens_per_s for r in good]),
            chars_per_s=Stat.of([r.chars_per_s for r in good]),
            total_s=Stat.of([r.total_s for r in good]),
        )

    gen_tokens = sum((r.completion_tokens or 0) for r in ok)
    gen_seconds = sum((r.generation_s or 0.0) for r in ok)
    drafted = [r.drafted_tokens for r in ok if r.drafted_tokens is not None]
    accepted = [r.accepted_tokens for r in ok if r.accepted_tokens is not None]
    return GenerationSummary(
        n_prompts=n_prompts,
        n_samples=len(ok),
        n_failed=len(failed),
        n_truncated=sum(1 for r in ok if r.finish_reason == "length"),
        pass_rate_strict=_rate([bool(r.passed_strict) for r in checked]),
        pass_rate_loose=_rate([bool(r.passed_loose) for r in checked]),
        per_check={
            name: CheckRate(
                strict=sum(s for s, _ in v) / len(v), loose=sum(lo for _, lo in v) / len(v), n=len(v)
            )
            for name, v in sorted(per_check.items())
        },
        per_prompt=per_prompt,
        total_chars=sum(r.chars for r in ok),
        total_completion_tokens=gen_tokens,
        total_prompt_tokens=sum((r.prompt_tokens or 0) for r in ok),
        total_generation_s=gen_seconds,
        total_s=sum((r.total_s or 0.0) for r in ok),
        ttft_s=Stat.of([r.ttft_s for r in ok]),
        prompt_tokens_per_s=Stat.of([r.prompt_tokens_per_s for r in ok]),
        gen_tokens_per_s=Stat.of([r.gen_tokens_per_s for r in ok]),
        chars_per_s=Stat.of([r.chars_per_s for r in ok]),
        gen_tokens_per_s_aggregate=(
            sum(max((r.completion_tokens or 0) - 1, 0) for r in ok if r.generation_s) / gen_seconds
            if gen_seconds > 0
            else None
        ),
        drafted_tokens=sum(drafted) if drafted else None,
        accepted_tokens=sum(accepted) if accepted else None,
        acceptance_rate=(sum(accepted) / sum(drafted)) if drafted and sum(drafted) else None,
        concurrency=concurrency,
    )
