"""Terminal tables printed at the end of a run (rich)."""

from __future__ import annotations

from typing import Any

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
    heads = ("prompt", "category", "n", "strict", "loose", "chars", "gen tok/s", "chars/s", "seconds")
    rows = [
        [
            pid,
            p.category,
            f"{p.n}" + (f" (+{p.n_failed} failed)" if p.n_failed else ""),
            pct(p.pass_rate_strict),
            pct(p.pass_rate_loose),
            f"{p.mean_chars:.0f}" if p.mean_chars is not None else "-",
            fmt_stat(p.gen_tokens_per_s),
            fmt_stat(p.chars_per_s),
            fmt_stat(p.total_s),
        ]
        for pid, p in g.per_prompt.items()
    ]
    rows.append([
        "all",
        f"{g.n_truncated} truncated" if g.n_truncated else "",
        f"{g.n_samples}" + (f" (+{g.n_failed} failed)" if g.n_failed else ""),
        pct(g.pass_rate_strict),
        pct(g.pass_rate_loose),
        f"{g.total_chars}",
        fmt_stat(g.gen_tokens_per_s),
        fmt_stat(g.chars_per_s),
        f"{g.total_s:.1f} total",
    ])  # fmt: skip
    columns = [(h, [r[i] for r in rows]) for i, h in enumerate(heads)]
    # whole cells: at a narrow width the category, then the rightmost columns are dropped, never cut
    table, _ = fitted_table(header(result), columns, console.width, left={"prompt", "category"},
                            sections={len(rows) - 1}, priority=[0, 2, 3, 4, 5, 6, 7, 8, 1], say_dropped="")  # fmt: skip
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


# --------------------------------------------------------------------------------------------
# Tables that fit: no number or header word is ever split; columns are dropped instead.


def _need(header: str, cells: list[str], prose: bool) -> int:
    if prose:  # wraps between words, never inside one; kept readable (24) when the text is longer
        word = max(len(w) for text in [header, *cells] for w in (text.split() or [""]))
        return min(max(len(t) for t in [header, *cells]), max(word, 24))
    return max([len(header), *(len(c) for c in cells)])


def table_width(columns: list[tuple[str, list[str]]], box: bool = True, prose: frozenset[str] = frozenset()) -> int:
    """Characters a rich table needs with every cell and header on one line (prose columns: their
    longest word): text + 2 padding per column, plus the vertical borders."""
    inner = sum(_need(h, cells, h in prose) + 2 for h, cells in columns)
    return inner + (len(columns) + 1 if box else max(len(columns) - 1, 0))


def fit_columns(
    columns: list[tuple[str, list[str]]],
    width: int,
    keep: int = 1,
    priority: list[int] | None = None,
    prose: frozenset[str] = frozenset(),
) -> tuple[list[int], list[int]]:
    """(shown, dropped) column indices: drop columns, lowest priority first (by default the
    rightmost), until the table fits `width`. The first `keep` columns are never dropped."""
    order = priority if priority is not None else list(range(len(columns)))
    shown = list(range(len(columns)))
    dropped: list[int] = []
    for i in reversed(order):
        if table_width([columns[j] for j in shown], prose=prose) <= width:
            break
        if i < keep:
            continue
        shown.remove(i)
        dropped.append(i)
    return shown, sorted(dropped)


def fitted_table(
    title: str,
    columns: list[tuple[str, list[str]]],
    width: int,
    *,
    left: set[str] = frozenset(),  # type: ignore[assignment]
    keep: int = 1,
    sections: set[int] = frozenset(),  # type: ignore[assignment]
    caption: str | None = None,
    prose: frozenset[str] = frozenset(),
    priority: list[int] | None = None,
    say_dropped: str | None = None,
    **style: Any,
) -> tuple[Table, list[str]]:
    """A rich table of whole cells (no_wrap; `prose` columns wrap between words only) holding
    the columns that fit, and the dropped headers. `say_dropped` (a hint where else to read them,
    "" for none): the caption names what was dropped. `style`: rich Table options (box, pad_edge);
    the fit assumes a box with vertical lines, so a lighter box only leaves spare room."""
    shown, dropped = fit_columns(columns, width, keep, priority, prose)
    if dropped and say_dropped is not None:
        note = "not shown at this width: " + escape(", ".join(columns[i][0] for i in dropped))
        note += f" ({say_dropped})" if say_dropped else ""
        caption = f"{caption} ({note})" if caption else note
    table = Table(title=escape(title), title_justify="left", caption=caption, caption_justify="left", **style)
    for i in shown:
        h = columns[i][0]
        table.add_column(escape(h), justify="left" if h in left else "right", no_wrap=h not in prose,
                         overflow="fold" if h in prose else "ellipsis")  # fmt: skip
    n_rows = max((len(c) for _, c in columns), default=0)
    for r in range(n_rows):
        if r in sections:
            table.add_section()
        table.add_row(*[escape(columns[i][1][r]) for i in shown])
    return table, [columns[i][0] for i in dropped]


def pair_table(report, width: int) -> tuple[Table, list[str]]:
    """The pair report's table with whole cells: per metric A, B and A/B [95% CI]; the A and B
    values go first when the terminal is narrow, then the least-used ratios (see `dropped`)."""
    from evalkit.metrics.bootstrap import METRICS
    from evalkit.report.pairs import INTERVAL, NOISE, _val, fmt_ratio

    short = {"chars_per_s": "chars/s", "gen_tokens_per_s": "gen tok/s", "total_s": "time s", "output_chars": "chars"}
    prompts = list(report.per_prompt)
    rows = [(p, report.per_prompt[p], report.counts[p]) for p in prompts]
    total_n = (sum(c[0] for c in report.counts.values()), sum(c[1] for c in report.counts.values()))
    rows.append(("total", report.total, total_n))
    cols: list[tuple[str, list[str]]] = [("prompt", [r[0] for r in rows]), ("n A/B", [f"{c[0]}/{c[1]}" for _, _, c in rows])]
    prio_ratio, prio_val = [], []
    for m in METRICS:
        prio_val.append(len(cols))
        cols.append((f"{short[m]} A", [_val(r[m].a, m) for _, r, _ in rows]))
        prio_val.append(len(cols))
        cols.append((f"{short[m]} B", [_val(r[m].b, m) for _, r, _ in rows]))
        prio_ratio.append(len(cols))
        cols.append((f"{short[m]} A/B", [fmt_ratio(r[m]) for _, r, _ in rows]))
    priority = [0, 1, *prio_ratio, *prio_val]
    caption = (
        f"ratios A/B with {INTERVAL}; "
        f"'noise' = {NOISE} (the interval covers 1.0); '(no CI)' = too few samples for an honest interval"
    )
    return fitted_table(
        f"{report.a} / {report.b} · task {report.task} · factor: {report.factor}",
        cols, width, left={"prompt"}, sections={len(rows) - 1}, caption=caption, priority=priority,
    )  # fmt: skip


# --------------------------------------------------------------------------------------------
# The leaderboard in the terminal: its column sets are the catalogue's views (report/columns.py).


def leaderboard_columns(df, spec: str | None, wide: bool) -> list[str]:
    """The columns asked for: --columns a,b,c (any leaderboard column), --wide, or the compact set."""
    from evalkit.report.columns import COMPACT, WIDE, view
    from evalkit.report.load import ReportError

    if spec:
        cols = [c.strip() for c in spec.split(",") if c.strip()]
        unknown = [c for c in cols if c not in df.columns]
        if unknown or not cols:
            raise ReportError(f"--columns: unknown column(s) {', '.join(unknown) or '(none given)'}; "
                              "see the column reference in docs/leaderboard.md or --csv")  # fmt: skip
        return cols
    if wide:
        return view(WIDE)
    if "tg_tokens_per_s" not in df.columns or df["tg_tokens_per_s"].drop_nulls().len() == 0:  # no task=speed
        return [("gen_tokens_per_s" if c == "tg_tokens_per_s" else c) for c in view(COMPACT)]
    return view(COMPACT)


def print_leaderboard(df, console, columns: list[str], fit: bool = True, explicit: bool = False) -> list[str]:
    """The chosen columns per machine; columns equal on every row go into the title. Cells are
    whole: a column that does not fit the console is dropped (returned), never cut. Dropped first:
    the compact columns kept least (the catalogue's `keep`), or with --columns the last named."""
    from evalkit.report.columns import format_cell, header, keep_order

    dropped_all: list[str] = []
    for hw in df["hardware"].unique(maintain_order=True).to_list():
        part = df.filter(df["hardware"] == hw)
        cols = [c for c in columns if c in part.columns and (explicit or part[c].drop_nulls().len() > 0)]
        same = [c for c in ("model", "settings") if c in cols and part[c].n_unique() == 1 and len(part) > 1]
        title = " · ".join([f"leaderboard · {hw}", *(f"{c} {part[c][0]}" for c in same)])
        cols = [c for c in cols if c not in same]
        rank = {c: i for i, c in enumerate([] if explicit else keep_order())}
        priority = sorted(range(len(cols)), key=lambda i: rank.get(cols[i], len(rank) + i))
        rows = list(part.iter_rows(named=True))
        data = [(header(c), [format_cell(row.get(c), c) for row in rows]) for c in cols]
        width = console.width if fit else max(console.width, table_width(data))
        shown, dropped = fit_columns(data, width, keep=1, priority=priority)
        left = {header(c) for c in ("model", "variant", "settings")}
        table, _ = fitted_table(title, [data[i] for i in shown], width, left=left)
        narrow = console.width
        console.width = width  # --wide: as wide as the table, however wide the terminal
        console.print(table)
        console.width = narrow
        dropped_all += [cols[i] for i in dropped if cols[i] not in dropped_all]
    return dropped_all
