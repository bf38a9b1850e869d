"""The seeds' 2x2: plain / MTP / QAT / MTP+QAT of one family, from one sweep.

`python -m evalkit -m model=gemma4_12b_q4_k_m,gemma4_12b_qat backend.speculative=none,mtp
task=stress` writes four runs. Runs of one task, family, backend and machine whose settings
differ only in the speculation form a grid: one row per (model, speculative method) with speed,
the speculative pair's speedup and its interval, acceptance, and quality with its interval.

`grid_rows` returns typed rows (the HTML report and JSON use them as they are); `print_grid`
draws them in the terminal.
"""

from __future__ import annotations

import math
from collections import defaultdict

from pydantic import BaseModel

from evalkit.report.load import Run
from evalkit.speculative import comparable_config, method_of

Z95 = 1.959963984540054


class GridRow(BaseModel):
    """One cell of the grid: a model variant with or without speculative decoding."""

    group: str  # "<task> · <family> · <backend> · <hardware>": rows compared with each other
    task: str
    family: str
    backend: str
    hardware: str
    model: str
    variant: str
    qat: bool
    speculative: str  # "none", "mtp", "draft", "prompt_lookup"
    draft_model: str | None = None
    run_dir: str
    n_samples: int
    gen_tokens_per_s: float | None  # all generated tokens / all generation seconds
    # Against the plain run of the same model (the speculative pair block): per-sample
    # geometric-mean ratio of generation tokens/s and its 95% paired t interval (none below 3 pairs).
    speedup: float | None = None
    speedup_ci_low: float | None = None
    speedup_ci_high: float | None = None
    drafted_tokens: int | None = None
    accepted_tokens: int | None = None
    acceptance_rate: float | None = None
    # Strict check pass rate over all samples, with a 95% Wilson interval (samples as draws).
    pass_strict: float | None = None
    pass_strict_ci_low: float | None = None
    pass_strict_ci_high: float | None = None
    pass_n: int = 0
    # Speculative rows: pairs with the same text as the plain run, and how the rest differ.
    n_pairs: int | None = None
    n_identical: int | None = None
    n_numerics_explained: int | None = None
    n_unexplained: int | None = None


def wilson(k: int, n: int, z: float = Z95) -> tuple[float | None, float | None]:
    """Wilson score interval for k successes in n draws (coverage: tests/report/test_mtp_grid.py)."""
    if n <= 0:
        return None, None
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def _group_key(run: Run) -> tuple:
    cfg = comparable_config(run.result.config)
    cfg.pop("model", None)
    backend = cfg.get("backend", {})
    return (
        run.result.task,
        run.result.model.family or run.result.model.name,
        run.result.backend.type,
        run.result.hardware_fingerprint,
        repr(sorted(backend.items())),
        repr(sorted(cfg.get("task", {}).items())),
    )


def _pass(run: Run) -> tuple[float | None, int]:
    g = run.result.generation
    if g is None:
        return None, 0
    k = n = 0.0
    for p in g.per_prompt.values():
        if p.pass_rate_strict is not None and p.n:
            k += p.pass_rate_strict * p.n
            n += p.n
    return (k / n if n else None), int(round(n))


def _row(run: Run, group: str) -> GridRow:
    r = run.result
    g = r.generation
    s = r.speculative
    rate, n = _pass(run)
    lo, hi = wilson(int(round((rate or 0) * n)), n) if rate is not None else (None, None)
    row = GridRow(
        group=group,
        task=r.task,
        family=r.model.family or r.model.name,
        backend=r.backend.type,
        hardware=r.hardware.label,
        model=r.model.name,
        variant=r.model.variant,
        qat=r.model.qat,
        speculative=method_of(r.config),
        run_dir=str(run.dir),
        n_samples=g.n_samples if g else 0,
        gen_tokens_per_s=g.gen_tokens_per_s_aggregate if g else None,
        drafted_tokens=g.drafted_tokens if g else None,
        accepted_tokens=g.accepted_tokens if g else None,
        acceptance_rate=g.acceptance_rate if g else None,
        pass_strict=rate,
        pass_strict_ci_low=lo,
        pass_strict_ci_high=hi,
        pass_n=n,
    )
    if s is not None:
        row.draft_model = s.draft_model
        row.speedup, row.speedup_ci_low, row.speedup_ci_high = s.speedup_geomean, s.speedup_ci_low, s.speedup_ci_high
        if s.n_pairs:
            row.n_pairs, row.n_identical = s.n_pairs, s.n_identical_outputs
            row.n_numerics_explained, row.n_unexplained = s.n_numerics_explained, s.n_unexplained
    return row


def grid_rows(runs: list[Run]) -> list[GridRow]:
    """Rows of every grid the runs form: >= 2 variants of one family, plain and speculative."""
    groups: dict[tuple, list[Run]] = defaultdict(list)
    for run in runs:
        if run.result.generation is not None and run.result.status == "complete":
            groups[_group_key(run)].append(run)
    out: list[GridRow] = []
    for key, members in groups.items():
        methods = {method_of(m.result.config) for m in members}
        models = {(m.result.model.name, m.result.model.variant) for m in members}
        if "none" not in methods or len(methods) < 2 or len(models) < 2:
            continue
        label = f"{key[0]} · {key[1]} · {key[2]} · {members[0].result.hardware.label}"
        newest: dict[tuple[str, str], Run] = {}
        for m in sorted(members, key=lambda m: m.result.finished_at or m.result.created_at):
            newest[(m.result.model.name, m.result.model.variant, method_of(m.result.config))] = m
        rows = [_row(m, label) for m in newest.values()]
        out += sorted(rows, key=lambda r: (r.qat, r.model, r.variant, r.speculative != "none", r.speculative))
    return out


def _num(x: float | None, fmt: str = "{:.1f}") -> str:
    return "—" if x is None else fmt.format(x)


def _interval(x: float | None, lo: float | None, hi: float | None, fmt: str) -> str:
    if x is None:
        return "—"
    if lo is None or hi is None:
        return fmt.format(x)
    return f"{fmt.format(x)} [{fmt.format(lo)}–{fmt.format(hi)}]"


def _cells(r: GridRow) -> dict[str, str]:
    """One row's figures as text, the same for the terminal and the HTML grid."""
    pct = lambda x: x and 100 * x  # noqa: E731
    return {
        "gen tok/s": _num(r.gen_tokens_per_s),
        "speedup vs plain [95% CI]": _interval(r.speedup, r.speedup_ci_low, r.speedup_ci_high, "{:.2f}×"),
        "acceptance": _num(pct(r.acceptance_rate), "{:.0f}%") if r.drafted_tokens else "—",
        "pass strict [95% CI]": _interval(
            pct(r.pass_strict), pct(r.pass_strict_ci_low), pct(r.pass_strict_ci_high), "{:.0f}%"
        )
        + (f" (n={r.pass_n})" if r.pass_n else ""),
        "identical / numerics / unexplained": (
            f"{r.n_identical} / {r.n_numerics_explained} / {r.n_unexplained} of {r.n_pairs}" if r.n_pairs else "—"
        ),
    }


def _by_group(rows: list[GridRow]) -> dict[str, list[GridRow]]:
    by_group: dict[str, list[GridRow]] = defaultdict(list)
    for r in rows:
        by_group[r.group].append(r)
    return by_group


def print_grid(rows: list[GridRow], console) -> None:
    """One table per grid, whole cells only (columns are dropped, and named, when narrow)."""
    from evalkit.report.tables import fitted_table

    for group, members in _by_group(rows).items():
        figures = [_cells(r) for r in members]
        columns = [
            ("model", [r.model for r in members]),
            ("variant", [r.variant for r in members]),
            ("QAT", ["yes" if r.qat else "no" for r in members]),
            ("speculative", [r.speculative for r in members]),
            *[(name, [f[name] for f in figures]) for name in figures[0]],
        ]
        table, dropped = fitted_table(
            f"MTP / QAT grid · {group}", columns, console.width, left={"model", "variant", "QAT", "speculative"},
            priority=[0, 3, 4, 5, 6, 7, 8, 1, 2], say_dropped="evalkit-leaderboard --json has them",
        )  # fmt: skip
        console.print(table)


def grid_html(rows: list[GridRow]) -> str:
    """The grid as the seeds drew it: one row per model variant (QAT or not), one column per
    decoding method, speed, speedup, acceptance and quality in each cell. "" without a grid."""
    import html

    if not rows:
        return ""
    out = [
        "<h2 id='mtp-grid'>MTP × QAT grid</h2>",
        "<p class='muted'>Each cell: generation tokens/s, speedup against the plain run of the same "
        "variant (paired by prompt and seed, 95% t interval), draft acceptance, strict pass rate "
        "(95% Wilson interval) and how many outputs are identical to the plain run's.</p>",
    ]
    for group, members in _by_group(rows).items():
        methods = sorted({r.speculative for r in members}, key=lambda m: (m != "none", m))
        variants = list(dict.fromkeys((r.model, r.variant, r.qat) for r in members))
        cell = {(r.model, r.variant, r.speculative): r for r in members}
        head = "<th class='l'>variant</th>" + "".join(f"<th class='l'>{html.escape(m)}</th>" for m in methods)
        body = []
        for model, variant, qat in variants:
            tds = []
            for m in methods:
                r = cell.get((model, variant, m))
                if r is None:
                    tds.append("<td class='l muted'>not run</td>")
                    continue
                lines = "".join(
                    f"<div><span class='muted'>{html.escape(k)}</span> {html.escape(v)}</div>"
                    for k, v in _cells(r).items()
                    if v != "—"
                )
                tds.append(f"<td class='l'>{lines}</td>")
            label = f"{html.escape(model)} [{html.escape(variant)}]" + (" · QAT" if qat else "")
            body.append(f"<tr><td class='l'><b>{label}</b></td>{''.join(tds)}</tr>")
        out.append(
            f"<p class='muted'>{html.escape(group)}</p><div class='scroll'><table class='mtp-grid'>"
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
        )
    return "".join(out)
