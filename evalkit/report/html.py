"""One self-contained HTML file: inline CSS, the frontier plot as inline SVG, no scripts, no CDN.

It opens offline, from a mail attachment or a CI artifact, and looks the same everywhere.
"""

from __future__ import annotations

import html
import io
from datetime import datetime, timezone

import polars as pl

from evalkit.metrics.bootstrap import INTERVAL, METRICS
from evalkit.report.pair_quality import quality_html
from evalkit.report.columns import SUMMARY, format_cell, reference, view
from evalkit.report.frontier import QUALITY_METRICS, Frontier, group_title
from evalkit.report.pairs import METRIC_LABELS, NOISE, PairReport, fmt_detectable, fmt_ratio, memory_lines

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#1d2330;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #dde}
h3{font-size:15px;margin:18px 0 6px}.muted{color:#667}
table{border-collapse:collapse;margin:8px 0;font-size:12.5px}
th,td{border:1px solid #d5d9e2;padding:3px 7px;text-align:right;white-space:nowrap}
th{background:#eef1f7;position:sticky;top:0}td.l,th.l{text-align:left}
tr:nth-child(even) td{background:#fafbfd}tr.rec td{background:#e7f6e7!important;font-weight:600}
.flag{color:#0a7a2f;font-weight:700}.noise{color:#8a6d00}.sig{color:#0a5bd3;font-weight:600}
.warn{color:#a23a00}.plot svg{max-width:100%;height:auto}.box{background:#f6f8fb;border:1px solid #dde;padding:8px 12px;border-radius:6px}
details{margin:8px 0}summary{cursor:pointer;font-weight:600}
ul.confounds li{color:#a23a00}
body{overflow-wrap:anywhere}.scroll{overflow-x:auto;max-width:100%}
nav.toc{font-size:13px}nav.toc a{margin-right:10px}
.answers{display:grid;gap:10px;margin:6px 0 14px}.answer{border:1px solid #d5d9e2;border-radius:6px;padding:6px 8px;min-width:0;background:#fcfcfe}
.ahead{margin-bottom:4px}.badge{font-size:11px;padding:1px 6px;border-radius:8px;background:#e5e8ef}
.badge.ok{background:#d9f2df;color:#0a5a22}.badge.bad{background:#fbdcdc;color:#8d1010}
ul.checks{list-style:none;padding:0;margin:4px 0;font-size:12px}ul.checks li.ok{color:#0a6a2a}ul.checks li.bad{color:#9b1111}ul.checks li.loose{color:#8a6d00}
pre.out{white-space:pre-wrap;overflow-wrap:anywhere;font:12.5px/1.4 ui-monospace,Menlo,Consolas,monospace;margin:4px 0;background:#fff;padding:4px;border-left:3px solid #e3e6ee}
mark.fail{background:#ffc9c9;color:#600;border-bottom:2px solid #d00;padding:0 1px}
td.ok{color:#0a6a2a}td.bad{color:#9b1111;font-weight:600}
nav.out-index ul{columns:2 320px;margin:4px 0}a.top{font-size:12px;font-weight:400;margin-left:8px}
"""

# No request can leave the page: the browser itself refuses any (tests/report check it in Chromium).
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

def _table(df: pl.DataFrame, columns: list[str], table_id: str) -> str:
    cols = [c for c in columns if c in df.columns and df[c].drop_nulls().len() > 0]
    head = "".join(f'<th class="{"l" if df[c].dtype == pl.Utf8 else ""}">{html.escape(c)}</th>' for c in cols)
    body = []
    for row in df.iter_rows(named=True):
        cls = ' class="rec"' if row.get("recommended") else ""
        cells = []
        for c in cols:
            v = row.get(c)
            klass = "l" if df[c].dtype == pl.Utf8 else ("flag" if isinstance(v, bool) and v else "")
            cells.append(f'<td class="{klass}">{html.escape(format_cell(v, c))}</td>')
        body.append(f"<tr{cls}>{''.join(cells)}</tr>")
    return f'<div style="overflow-x:auto"><table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def frontier_svg(df: pl.DataFrame, qcol: str | None) -> list[tuple[str, str]]:
    """(title, inline SVG) per comparable group: quality vs speed, point area = memory."""
    if qcol is None:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.fonttype": "path", "font.size": 9})
    up = next((u for c, u in QUALITY_METRICS.values() if c == qcol), True)
    out = []
    for i, ((group,), members) in enumerate(df.group_by(["frontier_group"], maintain_order=True)):
        plt.rcParams["svg.hashsalt"] = f"evalkit-{i}"  # element ids stay unique across plots
        rows = [r for r in members.iter_rows(named=True) if r.get(qcol) is not None and r.get(r["speed_metric"]) is not None]
        if not rows:
            continue
        scol, mcol = rows[0]["speed_metric"], rows[0]["memory_metric"]
        xs = [r[scol] for r in rows]
        ys = [r[qcol] for r in rows]
        mem = [r.get(mcol) or 0.0 for r in rows]
        top = max(mem) or 1.0
        sizes = [60 + 900 * (m / top) for m in mem]
        fig, ax = plt.subplots(figsize=(9.5, 5.0), dpi=100)
        colors = ["#1f8a3a" if r.get("pareto_speed") else "#7a8599" for r in rows]
        ax.scatter(xs, ys, s=sizes, c=colors, alpha=0.55, edgecolors="#223", linewidths=0.6, zorder=3)
        front = sorted((r[scol], r[qcol]) for r in rows if r.get("pareto_speed"))
        if len(front) > 1:
            ax.plot([p[0] for p in front], [p[1] for p in front], "-", color="#1f8a3a", lw=1.6, zorder=2,
                    label="frontier (quality vs speed)")  # fmt: skip
        for r, x, y in zip(rows, xs, ys):
            label = f"{r['variant']}" + (" ★" if r.get("recommended") else "")
            if len({rr["model"] for rr in rows}) > 1:
                label = f"{r['model']}:{label}"
            ax.annotate(label, (x, y), textcoords="offset points", xytext=(7, 5), fontsize=8, zorder=4)
        positive = [y for y in ys if y > 0]
        if not up and positive and max(ys) / min(positive) > 30:  # KLD spans decades
            if len(positive) == len(ys):
                ax.set_yscale("log")
            else:  # the reference itself sits at 0
                ax.set_yscale("symlog", linthresh=min(positive))
        ax.set_xlabel(f"{scol} (higher is better)")
        ax.set_ylabel(f"{qcol} ({'higher' if up else 'lower'} is better)")
        hw = rows[0]["hardware"]
        ax.set_title(f"{qcol} vs {scol} · point area = {mcol} · {hw}", fontsize=9)
        ax.grid(True, alpha=0.3)
        if len(front) > 1:
            ax.legend(loc="best", fontsize=8)
        fig.tight_layout()
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None})
        plt.close(fig)
        svg = buf.getvalue()
        svg = svg[svg.index("<svg") :]
        out.append((group_title(rows[0], qcol), svg))
    return out



def _verdict_class(r) -> str:
    """Amber: the interval covers 1.0; blue: it does not; no colour: no interval at all."""
    return "noise" if r.covers_one else ("sig" if r.covers_one is False else "")

def _pair_html(p: PairReport) -> str:
    head = "<th class='l'>prompt</th><th>n A/B</th>" + "".join(
        f"<th>{html.escape(METRIC_LABELS[m])} A</th><th>B</th><th>A/B [95% CI]</th>" for m in METRICS
    )

    def cells(r, m) -> str:
        cls = _verdict_class(r)
        a = "–" if r.a is None else (f"{r.a:.0f}" if m == "output_chars" else f"{r.a:.2f}")
        b = "–" if r.b is None else (f"{r.b:.0f}" if m == "output_chars" else f"{r.b:.2f}")
        text = fmt_ratio(r).replace(" noise", "")
        title = html.escape(p.verdict(r))
        return f"<td>{a}</td><td>{b}</td><td class='{cls}' title='{title}'>{html.escape(text)}</td>"

    rows = []
    for pid, row in p.per_prompt.items():
        na, nb = p.counts[pid]
        rows.append(f"<tr><td class='l'>{html.escape(pid)}</td><td>{na}/{nb}</td>" + "".join(cells(row[m], m) for m in METRICS) + "</tr>")
    tn = (sum(c[0] for c in p.counts.values()), sum(c[1] for c in p.counts.values()))
    rows.append(
        f"<tr><td class='l'><b>total</b></td><td>{tn[0]}/{tn[1]}</td>" + "".join(cells(p.total[m], m) for m in METRICS) + "</tr>"
    )
    verdicts = "".join(
        f"<li>{html.escape(METRIC_LABELS[m])}: A/B {html.escape(fmt_ratio(p.total[m]).replace(' noise', ''))} — "
        f"<b class='{_verdict_class(p.total[m])}'>{html.escape(p.verdict(p.total[m]))}</b>"
        f"{html.escape(' (' + fmt_detectable(p.total[m]) + ')' if p.total[m].mde is not None else '')}</li>"
        for m in METRICS
        if p.total[m].ratio is not None
    )
    mem_lines = memory_lines(p.memory)
    conf = (
        "<p class='warn'><b>Confounds</b> — the two sides differ in more than the factor compared:</p><ul class='confounds'>"
        + "".join(f"<li>{html.escape(c)}</li>" for c in p.confounds)
        + "</ul>"
        if p.confounds
        else "<p>No confounds found: same bit width, KV cache, sampling, backend, hardware, build and sample counts.</p>"
    )
    notes = "".join(f"<p class='muted'>note: {html.escape(n)}</p>" for n in p.notes)
    return (
        f"<h3 class='pair'>{html.escape(p.a)} / {html.escape(p.b)} · task {html.escape(p.task)} · factor: {html.escape(p.factor)}</h3>"
        f"<div style='overflow-x:auto'><table class='pair-table'><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
        f"<p class='muted'>A/B ratios; {html.escape(INTERVAL)}; no interval below 3 samples a side. "
        f"<span class='noise'>Amber</span>: {NOISE} (the interval covers 1.0); <span class='sig'>blue</span>: distinguishable.</p>"
        f"<ul>{verdicts}</ul>" + quality_html(p.quality) + "".join(f"<p>{html.escape(x)}</p>" for x in mem_lines) + conf + notes
    )


def mtp_grid_section(runs: list) -> str:
    """The plain / MTP / QAT / MTP+QAT grid (evalkit/report/mtp_grid.py), when the runs form one."""
    from evalkit.report.mtp_grid import grid_html, grid_rows

    return grid_html(grid_rows(runs))


def render(
    df: pl.DataFrame,
    front: Frontier,
    pairs: list[PairReport],
    warnings: list[str],
    sources: list[str],
    runs: list | None = None,
) -> str:
    from evalkit.report.outputs import collect_outputs, outputs_html
    from evalkit.report.quality import check_counts, check_table_html, depth_html, depth_speeds, kld_curves, kld_html

    runs = runs or []
    scratch: list[str] = []  # the same skipped-run warnings the leaderboard already gave
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    toc = [("recommendation", "Recommendation"), ("frontier", "Frontier"), ("leaderboard-section", "Leaderboard"),
           ("quality", "Quality per check"), ("kld-distribution", "KLD distribution"), ("speed-depth", "Speed by depth"),
           ("outputs", "Outputs side by side")]  # fmt: skip
    if pairs:
        toc.append(("pairs", "Pairwise comparisons"))
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<meta http-equiv='Content-Security-Policy' content=\"{CSP}\">",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>evalkit leaderboard</title><style>{CSS}</style></head><body>",
        "<h1>evalkit leaderboard</h1>",
        f"<p class='muted'>{len(df)} row(s) from {html.escape(', '.join(sources))} · generated {when} · "
        "one row per model, variant, backend settings and hardware; nothing is averaged across machines.</p>",
        "<nav class='toc' id='toc'>" + "".join(f"<a href='#{a}'>{t}</a>" for a, t in toc) + "</nav>",
    ]
    parts.append("<h2 id='recommendation-h'>Recommendation</h2><div class='box' id='recommendation'>")
    for rec in front.recommendations:
        parts.append(f"<p>{html.escape(rec.reason)}</p>")
        if rec.excluded:
            parts.append("<p class='muted'>excluded: " + html.escape("; ".join(rec.excluded)) + "</p>")
    for note in front.notes:
        parts.append(f"<p class='warn'>{html.escape(note)}</p>")
    parts.append("</div>")

    parts.append("<h2 id='frontier'>Frontier</h2>")
    plots = frontier_svg(front.frame, front.quality)
    if plots:
        for i, (title, svg) in enumerate(plots):
            parts.append(f"<div class='plot frontier-plot' id='frontier-plot-{i}'><p class='muted'>{html.escape(title)}</p>{svg}</div>")
        parts.append(
            "<p class='muted'>Green: on the quality-vs-speed Pareto frontier of its group (no other variant is at least as "
            "fast and at least as good, and better in one). ★ recommended.</p>"
        )
    else:
        parts.append("<p class='warn'>No quality metric measured: no frontier plot.</p>")

    parts.append("<h2 id='leaderboard-section'>Leaderboard</h2>")
    parts.append(_table(front.frame, view(SUMMARY), "leaderboard"))
    parts.append("<details><summary>All columns</summary>" + _table(front.frame, list(front.frame.columns), "leaderboard-full") + "</details>")

    parts.append("<h2 id='quality'>Quality per check</h2>")
    parts.append(check_table_html(check_counts(runs, scratch)))
    parts.append("<h2 id='kld-distribution'>KLD distribution</h2>")
    parts.append(kld_html(*kld_curves(runs, scratch)))
    parts.append("<h2 id='speed-depth'>Speed by context depth</h2>")
    parts.append(depth_html(depth_speeds(runs, scratch)))
    parts.append(mtp_grid_section(runs))  # HOOK: the MTP x QAT grid (see mtp_grid_section)
    parts.append("<h2 id='outputs'>Outputs side by side</h2>")
    parts.append(outputs_html(collect_outputs(runs, scratch)))
    if pairs:
        parts.append("<h2 id='pairs'>Pairwise comparisons</h2>")
        parts.extend(_pair_html(p) for p in pairs)
    if warnings:
        parts.append("<h2>Warnings</h2><ul>" + "".join(f"<li class='warn'>{html.escape(w)}</li>" for w in warnings) + "</ul>")
    ref = "".join(f"<tr><td class='l'>{html.escape(k)}</td><td class='l'>{html.escape(v)}</td></tr>" for k, v in reference())
    parts.append(f"<details><summary>Column reference</summary><div class='scroll'><table><tbody>{ref}</tbody></table></div></details>")
    parts.append("</body></html>")
    return "\n".join(parts)
