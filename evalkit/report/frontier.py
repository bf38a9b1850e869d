"""The frontier and the recommendation: Pareto flags per comparable group of leaderboard rows,
and the fastest row within the given quality and memory budgets per group.

Rows are comparable when they ran on the same hardware class and their quality figure means the
same thing (same KLD reference and corpus, same suites and sampling, same perplexity corpus).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from evalkit.metrics.pareto import pareto_flags
from evalkit.records import stable_hash
from evalkit.report.columns import slug
from evalkit.report.load import ReportError
from evalkit.report.rows import to_frame

# name -> (column, larger is better)
QUALITY_METRICS: dict[str, tuple[str, bool]] = {
    "kld": ("kld_mean", False),
    "kld_resp": ("kld_resp_mean", False),  # KLD on a task's own answers (responses:<task>)
    "pass_strict": ("pass_strict", True),
    "pass_loose": ("pass_loose", True),
    "ppl": ("ppl", False),
    "same_top": ("same_top_pct", True),
}
SPEED_METRICS = {"tg": "tg_tokens_per_s", "gen": "gen_tokens_per_s", "chars": "chars_per_s", "pp": "pp_tokens_per_s"}
MEMORY_METRICS = {"peak": "memory_gb", "size": "size_gb"}


@dataclass
class Recommendation:
    group: str
    row: dict[str, Any] | None
    reason: str
    excluded: list[str] = field(default_factory=list)


@dataclass
class Frontier:
    frame: pl.DataFrame
    quality: str | None  # column
    recommendations: list[Recommendation]
    notes: list[str]


def _quality_column(df: pl.DataFrame, quality: str) -> tuple[str | None, bool]:
    def has(col: str) -> bool:
        return col in df.columns and df[col].drop_nulls().len() > 0

    if quality == "auto":
        for name in ("kld", "pass_strict", "ppl"):
            col, up = QUALITY_METRICS[name]
            if has(col):
                return col, up
        return None, True
    if quality.startswith("bench:"):
        prefix = f"bench_{slug(quality.split(':', 1)[1])}_"
        cols = [c for c in df.columns if c.startswith(prefix) and not c.endswith(("_stderr", "_n", "_flips"))]
        if not cols:
            raise ReportError(f"no benchmark column for '{quality}' in these runs")
        return cols[0], True
    if quality not in QUALITY_METRICS:
        raise ReportError(
            f"unknown quality metric '{quality}'; use auto, {', '.join(QUALITY_METRICS)} or bench:<task>"
        )
    col, up = QUALITY_METRICS[quality]
    if not has(col):
        raise ReportError(f"no run measured {col} (quality metric '{quality}')")
    return col, up


def _group_key(row: dict, qcol: str) -> str:
    parts = [row["hardware_fingerprint"]]
    if qcol.startswith("kld_resp"):
        parts += [str(row.get("kld_resp_reference_sha256") or "")[:8], str(row.get("kld_resp_corpus_sha256") or "")[:8]]
    elif qcol.startswith("kld") or qcol in ("same_top_pct",):
        parts += [str(row.get("kld_reference_sha256") or "")[:8], str(row.get("kld_corpus_sha256") or "")[:8]]
    elif qcol.startswith("pass"):
        parts += [stable_hash([row.get("gen_tasks"), row.get("sampling")], 8)]
    elif qcol == "ppl":
        parts += [str(row.get("ppl_corpus") or "")]
    return "/".join(parts)


def group_title(row: dict, qcol: str | None) -> str:
    """What the rows of a frontier group have in common, in words."""
    base = str(row.get("hardware"))
    if not qcol:
        return base
    if qcol.startswith("kld_resp"):
        return f"{base} · KLD against {row.get('kld_resp_reference') or '?'} on its answers to {row.get('kld_resp_task') or '?'}"
    if qcol.startswith("kld") or qcol == "same_top_pct":
        return f"{base} · KLD against {row.get('kld_reference') or '?'} on {row.get('kld_corpus') or '?'}"
    if qcol.startswith("pass"):
        return f"{base} · pass rates over {row.get('gen_tasks')} with {row.get('sampling') or '?'}"
    if qcol == "ppl":
        return f"{base} · perplexity on {row.get('ppl_corpus') or '?'}"
    return base


def _choose(rows: list[dict], choice: str, table: dict[str, str], order: list[str]) -> str:
    if choice != "auto":
        if choice not in table:
            raise ReportError(f"unknown metric '{choice}'; use auto or one of {', '.join(table)}")
        return table[choice]
    best, best_n = table[order[0]], -1
    for name in order:
        n = sum(1 for r in rows if r.get(table[name]) is not None)
        if n == len(rows):
            return table[name]
        if n > best_n:
            best, best_n = table[name], n
    return best


def frontier(
    df: pl.DataFrame,
    *,
    quality: str = "auto",
    speed: str = "auto",
    memory: str = "auto",
    max_kld: float | None = None,
    min_pass_rate: float | None = None,
    max_memory_gb: float | None = None,
) -> Frontier:
    """Pareto flags per comparable group, and the fastest row within the budgets per group."""
    qcol, up = _quality_column(df, quality)
    rows = df.to_dicts()
    notes: list[str] = []
    recs: list[Recommendation] = []
    for r in rows:
        r.update(quality_metric=qcol, speed_metric=None, memory_metric=None, frontier_group=None,
                 pareto_speed=None, pareto_memory=None, recommended=False)  # fmt: skip
    if qcol is None:
        notes.append("no quality metric measured (kld, constraint pass rate or perplexity): no frontier")
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        groups[_group_key(r, qcol or "")].append(r)
    for gkey, members in groups.items():
        scol = _choose(members, speed, SPEED_METRICS, ["tg", "gen", "chars"])
        mcol = _choose(members, memory, MEMORY_METRICS, ["peak", "size"])
        for r in members:
            r.update(speed_metric=scol, memory_metric=mcol, frontier_group=gkey)
        if qcol is not None:
            q = [r.get(qcol) for r in members]
            fs = pareto_flags([r.get(scol) for r in members], q, maximize_x=True, maximize_y=up)
            fm = pareto_flags([r.get(mcol) for r in members], q, maximize_x=False, maximize_y=up)
            for r, a, b in zip(members, fs, fm):
                r["pareto_speed"], r["pareto_memory"] = a, b
        recs.append(_recommend(gkey, members, scol, mcol, max_kld, min_pass_rate, max_memory_gb))
    out = to_frame(rows)
    return Frontier(out, qcol, recs, notes)


def _name(r: dict) -> str:
    return f"{r['model']}:{r['variant']}" + ("" if r["settings"] == r["backend"] else f" [{r['settings']}]")


def _recommend(gkey, members, scol, mcol, max_kld, min_pass, max_mem) -> Recommendation:
    budgets = []
    if max_kld is not None:
        budgets.append(f"kld_mean <= {max_kld:g}")
    if min_pass is not None:
        budgets.append(f"pass_strict >= {min_pass:g}")
    if max_mem is not None:
        budgets.append(f"{mcol} <= {max_mem:g} GB")
    ok, excluded = [], []
    for r in members:
        why = None
        if r.get("status") != "complete":
            why = "incomplete"
        elif r.get(scol) is None:
            why = f"no {scol}"
        elif max_kld is not None and r.get("kld_mean") is None:
            why = "no KLD measured"
        elif max_kld is not None and r["kld_mean"] > max_kld:
            why = f"KLD {r['kld_mean']:.4g} > {max_kld:g}"
        elif min_pass is not None and r.get("pass_strict") is None:
            why = "no pass rate measured"
        elif min_pass is not None and r["pass_strict"] < min_pass:
            why = f"pass rate {r['pass_strict']:.0%} < {min_pass:.0%}"
        elif max_mem is not None and r.get(mcol) is None:
            why = f"no {mcol}"
        elif max_mem is not None and r[mcol] > max_mem:
            why = f"{mcol} {r[mcol]:.2f} > {max_mem:g} GB"
        if why:
            excluded.append(f"{_name(r)} ({why})")
        else:
            ok.append(r)
    hw = members[0]["hardware"]
    if not ok:
        return Recommendation(gkey, None, f"on {hw}: no variant meets {' and '.join(budgets) or 'the budgets'}", excluded)
    ok.sort(key=lambda r: -r[scol])
    best = ok[0]
    best["recommended"] = True
    if budgets:
        reason = f"on {hw}: {_name(best)} is the fastest ({best[scol]:.1f} {scol}) of {len(ok)} variant(s) within {' and '.join(budgets)}"
    else:
        reason = (
            f"on {hw}: {_name(best)} is the fastest ({best[scol]:.1f} {scol}) of {len(ok)} variant(s); no budget "
            "was given, so quality was not weighed (pass --max-kld, --min-pass-rate or --max-memory-gb)"
        )
    qbits = [f"kld_mean {best['kld_mean']:.4g}" if best.get("kld_mean") is not None else None,
             f"pass_strict {best['pass_strict']:.0%}" if best.get("pass_strict") is not None else None,
             f"{mcol} {best[mcol]:.2f} GB" if best.get(mcol) is not None else None]  # fmt: skip
    extras = [q for q in qbits if q]
    if extras:
        reason += "; it has " + ", ".join(extras)
    if len(ok) > 1:
        reason += f"; next: {_name(ok[1])} at {ok[1][scol]:.1f}"
    return Recommendation(gkey, best, reason, excluded)

