"""The kld and perplexity tables keep every printed number whole at any terminal width."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest
from rich.console import Console

from evalkit.records import PerplexitySummary, ScoredCorpus, read_result
from evalkit.report.kld_tables import print_kld, print_perplexity

DATA = Path(__file__).parents[1] / "data" / "records_v1"


def _printed(printer, name: str, width: int, tmp_path: Path) -> str:
    run = tmp_path / "task" / "variant" / "run"
    run.mkdir(parents=True)
    shutil.copy(DATA / name, run / "results.json")
    console = Console(width=width, record=True, file=io.StringIO())
    printer(read_result(run), console)
    return console.export_text()


@pytest.mark.parametrize("width", [60, 100, 160])
def test_kld_table_cells_are_whole_and_what_is_left_out_is_named(tmp_path, width):
    out = _printed(print_kld, "kld.json", width, tmp_path)
    table = out.split("reference:")[0]
    assert max(len(line.rstrip()) for line in table.splitlines()) <= width
    # the headline figures survive the narrowest width, whole
    for cell in ("q4_k_m ←", "0.012334", "96.48±0.00", "10.088"):
        assert cell in table, f"{cell!r} split or dropped at width {width}:\n{out}"
    if width >= 160:
        assert "not shown" not in out and "0.001465" in table  # the median
    else:
        assert "not shown at this width:" in out and "0.001465" not in table


def test_perplexity_table_keeps_the_ppl_whole(tmp_path):
    """A perplexity record made from the kld fixture's own scored corpus (same fields, real values)."""
    run = tmp_path / "kld" / "variant" / "run"
    run.mkdir(parents=True)
    shutil.copy(DATA / "kld.json", run / "results.json")
    kld = read_result(run)
    corpus = kld.kld.model_dump(include=set(ScoredCorpus.model_fields) | {"ppl", "ppl_se", "timing"})
    result = kld.model_copy(update={"kld": None, "perplexity": PerplexitySummary(
        **corpus, ppl_se_clustered=0.0123, nll_mean=2.3114, nll_se=0.0104)})  # fmt: skip
    printed = {}
    for width in (160, 50):
        console = Console(width=width, record=True, file=io.StringIO())
        print_perplexity(result, console)
        printed[width] = console.export_text()
    ppl = f"{kld.kld.ppl:.4f} ± {kld.kld.ppl_se:.4f}"
    assert ppl in printed[160] and "0.0123" in printed[160] and "not shown" not in printed[160]
    assert ppl in printed[50] and "not shown at this width:" in printed[50]
    table = printed[50].split("corpus:")[0]
    assert max(len(line.rstrip()) for line in table.splitlines()) <= 50
