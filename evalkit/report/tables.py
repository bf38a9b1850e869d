"""Terminal tables printed at the end of a run (rich)."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from evalkit.records import RunResult, Stat


def fmt_stat(s: Stat, digits: int = 1) -> str:
    if s.mean is None:
        return "-"
    return f"{s.mean:.{digits}f} ± {s.sd:.{digits}f}" if s.n > 1 else f"{s.mean:.{digits}f}"


def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def gib(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**30:.2f} GiB"


def mib(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**20:.0f} MiB"


def header(result: RunResult) -> str:
    m = result.model
    return (
        f"{m.name} [{m.variant}] · {result.task} · {result.backend.type} on {result.backend.device} · "
        f"{mib(m.size_bytes)}, {'-' if m.bits_per_weight is None else f'{m.bits_per_weight:.2f}'} bpw · "
        f"peak RSS {mib(result.memory.peak_rss_bytes)}"
    )


def print_generation(result: RunResult, console: Console) -> None:
    g = result.generation
    if g is None:
        return
    table = Table(title=escape(header(result)), title_justify="left")  # "[remote]" is no markup
    for col in ("prompt", "category", "n", "strict", "loose", "chars", "gen tok/s", "chars/s", "seconds"):
        table.add_column(col, justify="left" if col in ("prompt", "category") else "right")
    for pid, p in g.per_prompt.items():
        table.add_row(
            pid,
            p.category,
            f"{p.n}" + (f" (+{p.n_failed} failed)" if p.n_failed else ""),
            pct(p.pass_rate_strict),
            pct(p.pass_rate_loose),
            f"{p.mean_chars:.0f}" if p.mean_chars is not None else "-",
            fmt_stat(p.gen_tokens_per_s),
            fmt_stat(p.chars_per_s),
            fmt_stat(p.total_s),
        )
    table.add_section()
    table.add_row(
        "all",
        f"{g.n_truncated} truncated" if g.n_truncated else "",
        f"{g.n_samples}" + (f" (+{g.n_failed} failed)" if g.n_failed else ""),
        pct(g.pass_rate_strict),
        pct(g.pass_rate_loose),
        f"{g.total_chars}",
        fmt_stat(g.gen_tokens_per_s),
        fmt_stat(g.chars_per_s),
        f"{g.total_s:.1f} total",
    )
    console.print(table)
    extras = [f"time to first token {fmt_stat(g.ttft_s, 3)} s", f"prompt {fmt_stat(g.prompt_tokens_per_s, 0)} tok/s"]
    if g.acceptance_rate is not None:
        extras.append(
            f"speculative: {g.accepted_tokens}/{g.drafted_tokens} drafted tokens accepted ({pct(g.acceptance_rate)})"
        )
    if g.per_check:
        extras.append(
            "checks: " + ", ".join(f"{k} {pct(v.strict)}/{pct(v.loose)}" for k, v in g.per_check.items())
        )
    for line in extras:
        console.print(line)
    console.print(f"results: {result.run_id} → results.json, samples.jsonl")
