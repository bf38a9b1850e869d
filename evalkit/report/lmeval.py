"""The terminal table of a task=lm_eval run: score ± stderr per task, and flips when counted."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from evalkit.records import RunResult
from evalkit.report.tables import header


def _pct(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{100 * x:.{digits}f}"


def print_lm_eval(result: RunResult, console: Console) -> None:
    s = result.lm_eval
    if s is None:
        return
    flips = s.flips or {}
    table = Table(title=escape(header(result)), title_justify="left")
    cols = ["task", "metric", "n", "value %", "± stderr"]
    if s.flips is not None:
        cols += ["Δ vs ref (pts)", "flips", "→ right", "→ wrong"]
    for col in cols:
        table.add_column(col, justify="left" if col in ("task", "metric") else "right")
    for name, t in s.tasks.items():
        row = [name + (" (group)" if t.is_group else ""), t.metric, str(t.n or "-"), _pct(t.value), _pct(t.stderr)]
        if s.flips is not None:
            f = flips.get(name)
            row += (
                [_signed(f.accuracy_delta), str(f.n_flips), str(f.to_correct), str(f.to_incorrect)]
                if f
                else ["-"] * 4
            )
        table.add_row(*row)
    if s.flips_total is not None and s.flips is not None:
        f = s.flips_total
        table.add_section()
        table.add_row(
            "all items", "", str(f.n_common), _pct(f.accuracy), "",
            _signed(f.accuracy_delta), str(f.n_flips), str(f.to_correct), str(f.to_incorrect),
        )
    console.print(table)
    if s.flips_total is not None:
        f = s.flips_total
        se = f" ± {100 * f.accuracy_delta_se:.1f}" if f.accuracy_delta_se is not None else ""
        console.print(
            f"flips vs {escape(f.reference)}: {f.n_flips} of {f.n_common} items changed verdict "
            f"({f.to_correct} to right, {f.to_incorrect} to wrong), accuracy Δ {_signed(f.accuracy_delta)}{se} pts; "
            f"{f.n_changed_answers} answers differ"
        )
    elif s.reference_note:
        console.print(f"flips: {s.reference_note}")
    st = s.stats
    if st.get("loglikelihood_requests") or st.get("generate_requests"):
        console.print(
            f"work: {st.get('loglikelihood_requests', 0)} log-likelihood requests "
            f"({st.get('tokens_decoded', 0)} tokens decoded, {st.get('tokens_reused', 0)} reused from the KV cache, "
            f"{st.get('scoring_s', 0):.1f} s of which log-softmax {st.get('logprob_s', 0):.2f} s), "
            f"{st.get('generate_requests', 0)} generations "
            f"({st.get('tokens_generated', 0)} tokens, {st.get('generate_s', 0):.1f} s)"
            + (f"; {s.cached_requests} answered from the cache" if s.cached_requests else "")
        )
    if s.remote_check:
        rc = s.remote_check
        verdict = {True: "agree", False: "DISAGREE", None: "not checked"}[rc.get("agree")]
        console.print(f"server log-likelihoods vs in-process: {verdict} ({rc.get('n_checked', 0)} requests)")
    console.print(f"results: {result.run_id} → results.json, items.jsonl")


def _signed(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:+.1f}"
