"""Quality you can see: pass counts per check and variant, the per-token KLD distribution, and
prompt/generation speed against context depth.

Pass rates are shown as plain counts k/n: an interval is only printed where a simulation test
has checked its coverage (the statistics issue), and none has for these yet.
"""

from __future__ import annotations

import html
import io
from collections import defaultdict
from dataclasses import dataclass

from evalkit.report.rows import dedupe_tasks, row_key
from evalkit.report.load import Run
from evalkit.report.outputs import variant_labels


def _rows(runs: list[Run], pick, warnings: list[str]) -> tuple[list[tuple[str, list[Run]]], dict]:
    chosen = [r for r in runs if pick(r)]
    by_row: dict[tuple, list[Run]] = defaultdict(list)
    for r in chosen:
        by_row[row_key(r)].append(r)
    groups = {k: dedupe_tasks(g, warnings) for k, g in by_row.items()}
    labels = variant_labels([r for g in groups.values() for r in g])
    order = sorted(groups, key=lambda k: (groups[k][0].result.model.name, -(groups[k][0].result.model.bits_per_weight or 0), k[1]))
    return [(labels[k], groups[k]) for k in order], labels


# --------------------------------------------------------------------------------------------
# Pass counts per check


@dataclass
class CheckCounts:
    labels: list[str]
    checks: list[str]
    strict: dict[tuple[str, str], tuple[int, int]]  # (check, label) -> (passed, n)
    loose: dict[tuple[str, str], tuple[int, int]]
    tasks: dict[str, str]  # label -> the suites pooled


def check_counts(runs: list[Run], warnings: list[str]) -> CheckCounts:
    rows, _ = _rows(runs, lambda r: r.result.generation is not None and r.result.generation.per_check, warnings)
    strict: dict[tuple[str, str], tuple[int, int]] = {}
    loose: dict[tuple[str, str], tuple[int, int]] = {}
    checks: list[str] = []
    tasks = {}
    for label, group in rows:
        tasks[label] = "+".join(sorted(r.result.task for r in group))
        for r in group:
            for name, rate in r.result.generation.per_check.items():  # type: ignore[union-attr]
                if name not in checks:
                    checks.append(name)
                for store, share in ((strict, rate.strict), (loose, rate.loose)):
                    k, n = store.get((name, label), (0, 0))
                    store[(name, label)] = (k + round(share * rate.n), n + rate.n)
    return CheckCounts([lab for lab, _ in rows], sorted(checks), strict, loose, tasks)


def check_table_html(c: CheckCounts) -> str:
    if not c.labels:
        return "<p class='muted'>No generation run with checks.</p>"
    head = "<th class='l'>check</th>" + "".join(f"<th>{html.escape(lab)}</th>" for lab in c.labels)
    body = []
    for name in c.checks:
        cells = []
        for lab in c.labels:
            if (name, lab) not in c.strict:
                cells.append("<td>–</td>")
                continue
            k, n = c.strict[(name, lab)]
            kl, _ = c.loose[(name, lab)]
            cls = "ok" if k == n else ("bad" if k < n / 2 else "")
            cells.append(f"<td class='{cls}'>{k}/{n}<span class='muted'> · loose {kl}/{n}</span></td>")
        body.append(f"<tr><td class='l'>{html.escape(name)}</td>{''.join(cells)}</tr>")
    return (
        f"<div class='scroll'><table id='check-table'><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
        "<p class='muted'>Generations passing each check (strict), of those checked; loose forgives a stray first/last "
        "line and markup characters. Plain counts: no interval is printed until one has been checked for coverage at "
        "these sample sizes. Suites: "
        + html.escape("; ".join(f"{lab}: {t}" for lab, t in c.tasks.items()))
        + "</p>"
    )


# --------------------------------------------------------------------------------------------
# KLD distribution


@dataclass
class KldCurve:
    label: str
    levels: list[float]
    values: list[float]
    mean: float
    reference: str
    corpus: str


def kld_curves(runs: list[Run], warnings: list[str]) -> tuple[list[KldCurve], list[str]]:
    """(curves, labels of kld runs without one: recorded before the curve was kept)."""
    rows, _ = _rows(runs, lambda r: r.result.kld is not None, warnings)
    curves, missing = [], []
    for label, group in rows:
        k = group[0].result.kld
        if k.kld_quantiles and k.kld_quantile_levels:  # type: ignore[union-attr]
            curves.append(KldCurve(label, k.kld_quantile_levels, k.kld_quantiles, k.kld_mean, k.reference, k.corpus))  # type: ignore[union-attr]
        else:
            missing.append(label)
    return curves, missing


def _svg(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})
    plt.close(fig)
    svg = buf.getvalue()
    return svg[svg.index("<svg") :]


def _plt(salt: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.fonttype": "path", "font.size": 9, "svg.hashsalt": f"evalkit-{salt}"})
    return plt


def kld_svg(curves: list[KldCurve]) -> str:
    """Per-token KLD against percentile, one line per variant, KLD on a log axis (clipped at 1e-6:
    a variant identical to the reference sits on the floor). Left: all tokens; right: the worst
    10%, against the share of tokens with a larger KLD on a log axis, so p99.9 is as visible as p50."""
    plt = _plt("kld")
    fig, (ax, tail) = plt.subplots(1, 2, figsize=(11, 4.4), dpi=100, gridspec_kw={"width_ratios": [3, 2]})
    floor = 1e-6
    for c in curves:
        ys = [max(v, floor) for v in c.values]
        (line,) = ax.plot([100 * q for q in c.levels], ys, "-", lw=1.6, label=f"{c.label} (mean {c.mean:.4g})")
        pts = [(1 - q, y) for q, y in zip(c.levels, ys) if 0.9 <= q < 1.0]
        tail.plot([100 * p[0] for p in pts], [p[1] for p in pts], "o-", ms=3, lw=1.4, color=line.get_color())
    ax.set_yscale("log")
    ax.set_xlim(0, 100)
    ax.set_xlabel("percentile of scored tokens")
    ax.set_ylabel("KL divergence to the reference (nats/token)")
    ax.set_title("all tokens", fontsize=9)
    ax.legend(loc="upper left", fontsize=8)
    tail.set_xscale("log")
    tail.set_yscale("log")
    tail.invert_xaxis()
    tail.set_xlabel("% of tokens with a larger KLD (10% = p90, 0.01% = p99.99)")
    tail.set_title("the tail", fontsize=9)
    for a in (ax, tail):
        a.grid(True, which="major", alpha=0.3)
    fig.tight_layout()
    return _svg(fig)


def kld_html(curves: list[KldCurve], missing: list[str]) -> str:
    if not curves:
        note = f" (runs of {', '.join(missing)} were recorded before the curve was kept; re-run task=kld)" if missing else ""
        return f"<p class='muted'>No KLD distribution to show{html.escape(note)}.</p>"
    levels = [0.5, 0.9, 0.99, 0.999]
    head = "<th class='l'>variant</th><th>mean</th>" + "".join(f"<th>p{100 * q:g}</th>" for q in levels) + "<th>max</th>"
    body = []
    for c in curves:
        at = dict(zip(c.levels, c.values))
        cells = "".join(f"<td>{at[q]:.4g}</td>" if q in at else "<td>–</td>" for q in levels)
        body.append(f"<tr><td class='l'>{html.escape(c.label)}</td><td>{c.mean:.4g}</td>{cells}<td>{c.values[-1]:.4g}</td></tr>")
    note = f"<p class='muted'>no curve for {html.escape(', '.join(missing))} (recorded before it was kept)</p>" if missing else ""
    return (
        f"<p class='muted'>per-token KLD against {html.escape(curves[0].reference)} on {html.escape(curves[0].corpus)}</p>"
        f"<div class='plot kld-plot' id='kld-plot'>{kld_svg(curves)}</div>"
        f"<div class='scroll'><table id='kld-table'><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
        "<p class='muted'>Each line: the KLD of the tokens at that percentile (every percent, finer in the tail); a "
        "line further up is further from the reference. Kept as 106 quantiles per run, not per token.</p>" + note
    )


# --------------------------------------------------------------------------------------------
# Speed against context depth


@dataclass
class DepthSpeed:
    label: str
    test: str  # pp512, tg128 ...
    depth: int
    mean: float
    sd: float
    n: int


def depth_speeds(runs: list[Run], warnings: list[str]) -> list[DepthSpeed]:
    rows, _ = _rows(runs, lambda r: r.result.speed is not None, warnings)
    out = []
    for label, group in rows:
        for t in group[0].result.speed.tests:  # type: ignore[union-attr]
            base = t.name.split(" @ ")[0]
            out.append(DepthSpeed(label, base, t.depth, t.tokens_per_s_mean, t.tokens_per_s_sd, t.repetitions))
    return out


def depth_html(speeds: list[DepthSpeed]) -> str:
    if not speeds:
        return "<p class='muted'>No speed runs (task=speed).</p>"
    labels = list(dict.fromkeys(s.label for s in speeds))
    cols = sorted({(s.test, s.depth) for s in speeds}, key=lambda x: (not x[0].startswith("pp"), x[0], x[1]))
    at = {(s.label, s.test, s.depth): s for s in speeds}
    head = "<th class='l'>variant</th>" + "".join(f"<th>{html.escape(t)} @ d{d}</th>" for t, d in cols)
    body = []
    for lab in labels:
        cells = "".join(
            f"<td>{at[(lab, t, d)].mean:.1f} ± {at[(lab, t, d)].sd:.1f}</td>" if (lab, t, d) in at else "<td>–</td>"
            for t, d in cols
        )
        body.append(f"<tr><td class='l'>{html.escape(lab)}</td>{cells}</tr>")
    out = (
        f"<div class='scroll'><table id='depth-table'><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
        "<p class='muted'>tokens/s, mean ± sd over the repetitions; d: tokens already in the KV cache when the test ran.</p>"
    )
    depths = sorted({s.depth for s in speeds})
    if len(depths) > 1:
        plt = _plt("depth")
        tests = list(dict.fromkeys(t for t, _ in cols))
        fig, axes = plt.subplots(1, len(tests), figsize=(4.8 * len(tests), 3.6), dpi=100, squeeze=False)
        for ax, test in zip(axes[0], tests):
            for lab in labels:
                pts = sorted((s.depth, s.mean) for s in speeds if s.label == lab and s.test == test)
                if pts:
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", lw=1.4, label=lab)
            ax.set_title(f"{test} tokens/s against depth", fontsize=9)
            ax.set_xlabel("context depth (tokens)")
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=7)
        fig.tight_layout()
        out = f"<div class='plot depth-plot' id='depth-plot'>{_svg(fig)}</div>" + out
    else:
        out += f"<p class='muted'>All tests ran at depth {depths[0]}: run task.depth=[0,4096] for speed against depth.</p>"
    return out
