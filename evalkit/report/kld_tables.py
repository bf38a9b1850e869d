"""Tables printed after task=perplexity and task=kld runs.

After a kld run the table also lists the runs beside it (same task directory) that share its
reference, corpus and settings, so the last job of a ladder sweep prints the whole ladder.
"""

from __future__ import annotations

from pathlib import Path

from rich import box
from rich.console import Console
from rich.markup import escape

from evalkit.records import KldSummary, RunResult
from evalkit.report.tables import fitted_table, header
from evalkit.rundir import completed_runs_of_task


def print_perplexity(result: RunResult, console: Console) -> None:
    p = result.perplexity
    if p is None:
        return
    cells = {
        "corpus": p.corpus,
        "n_ctx": str(p.n_ctx),
        "chunks": str(p.n_chunks),
        "scored": str(p.n_scored),
        "PPL": f"{p.ppl:.4f} ± {p.ppl_se:.4f}",
        "± (clustered)": f"{p.ppl_se_clustered:.4f}" if p.ppl_se_clustered is not None else "-",
        "tok/s": f"{p.timing.tokens_per_s:.0f}",
    }
    # whole cells: at a narrow width the settings go first, never a digit of the PPL
    table, _ = fitted_table(header(result), [(h, [c]) for h, c in cells.items()], console.width, left={"corpus"},
                            priority=[4, 5, 0, 6, 3, 2, 1], say_dropped="results.json has them")  # fmt: skip
    console.print(table)
    console.print(f"corpus: {p.corpus_description}, sha256 {p.corpus_sha256[:16]}…, {p.corpus_tokens} tokens")


def _same_setting(a: KldSummary, b: KldSummary) -> bool:
    keys = ("reference_sha256", "corpus_sha256", "n_ctx", "n_chunks", "top_k", "exact")
    return all(getattr(a, k) == getattr(b, k) for k in keys)


def ladder_rows(out_dir: Path, kld: KldSummary) -> list[RunResult]:
    """Complete kld runs next to out_dir with the same reference and settings."""
    return [r for _, r in completed_runs_of_task(out_dir) if r.kld is not None and _same_setting(kld, r.kld)]


def ladder(result: RunResult, out_dir: Path | None) -> list[RunResult]:
    """This kld result and the ladder beside it, by mean KLD."""
    assert result.kld is not None
    rows = ladder_rows(out_dir, result.kld) if out_dir is not None else []
    if not any(r.run_id == result.run_id for r in rows):
        rows.append(result)
    rows.sort(key=lambda r: r.kld.kld_mean)  # type: ignore[union-attr]
    return rows


def print_kld(result: RunResult, console: Console, out_dir: Path | None = None) -> None:
    k = result.kld
    if k is None:
        return
    rows = ladder(result, out_dir)
    title = (
        f"KL divergence vs {k.reference_model} [{k.reference_variant}] · corpus {k.corpus} "
        f"({k.n_chunks} chunks × {k.n_ctx}, {k.n_scored} tokens scored)"
    )
    cols = ("variant", "MiB", "bpw", "PPL", "ln(PPL/ref)", "KLD mean", "± SE", "± cl.",
            "median", "p99", "max", "same top %", "Δp RMS", "tok/s")
    data = []
    for r in rows:
        m, s = r.model, r.kld
        assert s is not None
        mark = " ←" if r.run_id == result.run_id else ""
        cl = s.kld_se_clustered
        size = m.size_bytes
        data.append([
            f"{m.variant}{mark}",
            f"{size / 2**20:.0f}" if size else "-",
            f"{m.bits_per_weight or 0:.2f}",
            f"{s.ppl:.3f}",
            f"{s.ln_ppl_ratio_mean:+.5f}",
            f"{s.kld_mean:.6f}",
            f"{s.kld_se:.6f}",
            f"{cl:.6f}" if cl is not None else "-",
            f"{s.kld_median:.6f}",
            f"{s.kld_p99:.4f}",
            f"{s.kld_max:.3f}",
            f"{s.same_top_pct:.2f}±{s.same_top_se_pct:.2f}",
            f"{100 * s.dp_rms:.3f}%",
            f"{s.timing.tokens_per_s:.0f}",
        ])  # fmt: skip
    columns = [(h, [row[i] for row in data]) for i, h in enumerate(cols)]
    # kept longest: variant, KLD mean and its SE, same top, PPL; first to go: timing, the tails, size
    priority = [0, 5, 6, 11, 3, 4, 9, 7, 2, 1, 8, 10, 12, 13]
    table, _ = fitted_table(title, columns, console.width, left={"variant"}, priority=priority,
                            say_dropped="results.json has them", box=box.SIMPLE_HEAD, pad_edge=False)  # fmt: skip
    console.print(table)
    mode = "exact full-vocabulary reference" if k.exact else f"top-{k.top_k} reference cache"
    console.print(escape(f"reference: {k.reference}"))
    console.print(
        f"reference PPL {k.ppl_ref:.4f} ± {k.ppl_ref_se:.4f}; {mode}, {k.cache.bytes_per_token:.0f} B/token"
        f" ({'built' if k.cache.built else 'reused'}); corpus sha256 {k.corpus_sha256[:16]}…;"
        " ± cl.: SE clustered by chunk"
    )
