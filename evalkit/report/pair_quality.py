"""The quality half of a pair report: pass rates, KLD and benchmark accuracy, A against B.

Speed ratios alone do not answer "is B worth it"; these rows do, with intervals that hold at
the sample counts people run (evalkit/metrics/intervals.py):

* pass rate (all checks, and per check) over samples paired by prompt and seed: the A - B
  difference with Newcombe's continuity-corrected paired interval and the exact McNemar p on
  the discordant pairs;
* KLD against one reference, when both sides have a kld run on the same corpus and reference:
  the mean per-token difference, paired by token, t interval clustered by chunk;
* benchmark accuracy (task=lm_eval items): the difference, flips both ways, exact McNemar p and
  the same paired interval.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from evalkit.metrics.intervals import clustered_difference, paired_rate

NOISE = "not distinguishable from noise"


@dataclass
class QualityRow:
    metric: str  # "pass rate (all checks)", "pass rate: word_count", "KLD vs ...", "gsm8k accuracy"
    unit: str  # "pts" (pass rates and accuracies, shown as percentage points) or "nats"
    n: int  # pairs (samples or items) or tokens
    a: float | None
    b: float | None
    diff: float | None  # A - B
    lo: float | None = None
    hi: float | None = None
    p: float | None = None  # McNemar exact (pass rates, accuracy) or clustered t (KLD)
    test: str = ""
    a_only: int | None = None  # discordant: A right, B wrong
    b_only: int | None = None  # discordant: B right, A wrong
    mde: float | None = None  # smallest |A - B| detectable at 80% power, same unit as diff
    note: str | None = None  # why there is no interval
    clusters: int | None = None  # KLD: chunks

    @property
    def verdict(self) -> str:
        if self.diff is None:
            return "not measured"
        if self.lo is None or self.hi is None:
            return self.note or "no interval"
        return NOISE if self.lo <= 0.0 <= self.hi else "distinguishable"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ci95": [self.lo, self.hi], "verdict": self.verdict}


def _rate_row(metric: str, pairs: list[tuple[bool, bool]]) -> QualityRow:
    r = paired_rate(pairs)
    return QualityRow(
        metric=metric, unit="pts", n=r.n, a=r.a_rate, b=r.b_rate, diff=r.diff, lo=r.lo, hi=r.hi,
        p=r.mcnemar_p, test="McNemar exact", a_only=r.a_only, b_only=r.b_only, mde=r.mde, note=r.note,
    )  # fmt: skip


def generation_quality(sa, sb) -> tuple[list[QualityRow], list[str]]:
    """Pass-rate rows for two sides' samples of one task, paired by prompt and sample index.

    Returns (rows, notes). Checks are paired by name and position within the sample (a prompt
    may carry two checks of one kind); samples whose seeds differ between the sides are paired
    all the same and counted in a note.
    """
    ia = {(s.prompt_id, s.sample_index): s for s in sa}
    ib = {(s.prompt_id, s.sample_index): s for s in sb}
    keys = sorted(k for k in ia.keys() & ib.keys() if ia[k].passed_strict is not None and ib[k].passed_strict is not None)
    notes: list[str] = []
    if not keys:
        return [], notes
    seeds = sum(1 for k in keys if ia[k].seed != ib[k].seed)
    if seeds:
        notes.append(f"pass rates: {seeds} of {len(keys)} paired samples have different seeds on the two sides")
    rows = [_rate_row("pass rate (all checks)", [(bool(ia[k].passed_strict), bool(ib[k].passed_strict)) for k in keys])]
    per_check: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
    for k in keys:
        ca, cb = ia[k].checks, ib[k].checks
        for i, (x, y) in enumerate(zip(ca, cb)):
            if x.check == y.check:
                per_check[x.check].append((bool(x.passed), bool(y.passed)))
    if len(per_check) > 1 or (per_check and len(next(iter(per_check.values()))) != len(keys)):
        for name in sorted(per_check):
            rows.append(_rate_row(f"pass rate: {name}", per_check[name]))
    return rows, notes


def _kld_arrays(run_dir: Path) -> tuple[np.ndarray, np.ndarray] | None:
    path = run_dir / "per_token.npz"
    if not path.is_file():
        return None
    with np.load(path) as z:
        return np.asarray(z["kld"], np.float64), np.asarray(z["chunk"])


def kld_quality(a_runs, b_runs) -> tuple[list[QualityRow], list[str]]:
    """KLD difference rows for kld runs of the two sides against the same reference and corpus."""
    rows, notes = [], []
    ka = [r for r in a_runs if r.result.kld is not None]
    kb = [r for r in b_runs if r.result.kld is not None]
    for ra in ka:
        for rb in kb:
            sa, sb = ra.result.kld, rb.result.kld
            if (sa.reference_sha256, sa.corpus_sha256, sa.n_ctx) != (sb.reference_sha256, sb.corpus_sha256, sb.n_ctx):
                notes.append(
                    f"KLD: {ra.result.task} and {rb.result.task} were scored against different references or "
                    "corpora: no paired difference"
                )
                continue
            xa, xb = _kld_arrays(ra.dir), _kld_arrays(rb.dir)
            label = f"KLD vs {sa.reference_variant} ({sa.corpus})"
            if xa is None or xb is None or xa[0].shape != xb[0].shape or not np.array_equal(xa[1], xb[1]):
                rows.append(QualityRow(label, "nats", 0, sa.kld_mean, sb.kld_mean, sa.kld_mean - sb.kld_mean,
                                       note="per-token values missing or not aligned: no interval"))  # fmt: skip
                continue
            d = clustered_difference(xa[0], xb[0], xa[1])
            rows.append(QualityRow(
                label, "nats", d.n_tokens, d.mean_a, d.mean_b, d.diff, d.lo, d.hi, d.p,
                f"t on chunk means ({d.n_chunks - 1} df)", mde=d.mde, note=d.note, clusters=d.n_chunks,
            ))  # fmt: skip
    return rows, notes


def lmeval_quality(a_runs, b_runs) -> tuple[list[QualityRow], list[str]]:
    """Benchmark accuracy rows (per lm-eval task) over the items both sides scored."""
    from evalkit.records import ITEMS_FILE, read_items

    rows: list[QualityRow] = []
    la = [r for r in a_runs if (r.dir / ITEMS_FILE).is_file()]
    lb = {r.result.task: r for r in b_runs if (r.dir / ITEMS_FILE).is_file()}
    for ra in la:
        rb = lb.get(ra.result.task)
        if rb is None:
            continue
        ia = {(i.task, i.doc_id, i.doc_hash): i for i in read_items(ra.dir) if i.correct is not None}
        ib = {(i.task, i.doc_id, i.doc_hash): i for i in read_items(rb.dir) if i.correct is not None}
        by_task: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
        for k in sorted(ia.keys() & ib.keys()):
            by_task[k[0]].append((bool(ia[k].correct), bool(ib[k].correct)))
        for task, pairs in sorted(by_task.items()):
            rows.append(_rate_row(f"{task} accuracy", pairs))
    return rows, []


# --------------------------------------------------------------------------------------------
# Text


def fmt_quality(q: QualityRow) -> tuple[str, str, str, str, str]:
    """(A, B, A - B [95% CI], McNemar/t p and discordant counts, detectable) as display strings."""
    if q.unit == "pts":
        val = lambda v: "-" if v is None else f"{100 * v:.1f}%"  # noqa: E731
        dif = lambda v: f"{100 * v:+.1f}"  # noqa: E731
        unit = " pts"
    else:
        val = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
        dif = lambda v: f"{v:+.4f}"  # noqa: E731
        unit = ""
    d = "-" if q.diff is None else dif(q.diff) + unit
    if q.lo is not None and q.hi is not None:
        d += f" [{dif(q.lo)}, {dif(q.hi)}]"
    test = "" if q.p is None else f"p={q.p:.3g}"
    if q.a_only is not None:
        test += f" ({q.a_only} A only, {q.b_only} B only)"
    det = "-" if q.mde is None else (f"±{100 * q.mde:.0f} pts" if q.unit == "pts" else f"±{q.mde:.4f}")
    return val(q.a), val(q.b), d, test.strip(), det


def print_quality(rows: list[QualityRow], console) -> None:
    if not rows:
        console.print("quality: no pass/fail checks, kld or benchmark runs in common: no quality rows", markup=False)
        return
    from rich.table import Table

    t = Table(
        title="quality A - B (paired by prompt and seed, by token, or by item)",
        title_justify="left",
        caption="pass rates: Newcombe paired 95% interval (continuity-corrected), exact McNemar p on the "
        "discordant pairs; KLD: t interval clustered by chunk; detectable = smallest |A - B| found 80% of the time",
        caption_justify="left",
    )
    # whole numbers: the verdict wraps between words, other columns are dropped when too narrow
    from evalkit.report.tables import fitted_table

    heads = ("metric", "n", "A", "B", "A - B [95% CI]", "test", "detectable", "verdict")
    cells = [[q.metric, str(q.n), *fmt_quality(q), q.verdict] for q in rows]
    cols = [(h, [r[i] for r in cells]) for i, h in enumerate(heads)]
    t, _ = fitted_table(str(t.title), cols, console.width, left={"metric", "verdict"}, caption=str(t.caption),
                        prose=frozenset({"verdict"}), priority=[0, 4, 7, 1, 5, 6, 2, 3], say_dropped="")  # fmt: skip
    console.print(t)


def quality_html(rows: list[QualityRow]) -> str:
    """The quality rows as a table for the pair section of the HTML report."""
    import html

    if not rows:
        return "<p class='muted'>Quality: no pass/fail checks, kld or benchmark runs in common.</p>"
    head = "".join(f"<th>{h}</th>" for h in ("metric", "n", "A", "B", "A − B [95% CI]", "test", "detectable", "verdict"))
    body = []
    for q in rows:
        cls = "" if q.lo is None else ("noise" if q.verdict == NOISE else "sig")
        a, b, d, test, det = fmt_quality(q)
        cells = [q.metric, str(q.n), a, b, d, test, det]
        body.append(
            "<tr>" + "".join(f"<td{' class=l' if i == 0 else ''}>{html.escape(c)}</td>" for i, c in enumerate(cells))
            + f"<td class='{cls}'>{html.escape(q.verdict)}</td></tr>"
        )
    return (
        "<p><b>Quality</b> (A − B, paired by prompt and seed, by token, or by item):</p>"
        f"<div style='overflow-x:auto'><table class='pair-quality'><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
        "<p class='muted'>Pass rates and accuracy: Newcombe's continuity-corrected paired 95% interval and the exact "
        "McNemar p on the discordant pairs; KLD: t interval on chunk means. Detectable: the smallest |A − B| this n and "
        "noise would find 80% of the time.</p>"
    )
